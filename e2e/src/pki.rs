//! The local cluster's certificates: one CA, the API server's serving
//! certificate, client certificates for the admin and the controller
//! manager, and the service-account signing key. All ECDSA P-256, made fresh
//! for every cluster so nothing secret is ever checked in.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// The Service IP range the API server allocates from; its first address is
/// the `kubernetes` Service, which the serving certificate must name.
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";

/// Paths of the PEM files written by [`generate`].
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// The cluster CA (trusted by clients; signs every client certificate).
    pub ca_cert: PathBuf,
    /// The API server's serving certificate.
    pub apiserver_cert: PathBuf,
    /// Its key.
    pub apiserver_key: PathBuf,
    /// The admin client certificate (`system:masters`).
    pub admin_cert: PathBuf,
    /// Its key.
    pub admin_key: PathBuf,
    /// The controller manager's client certificate
    /// (`system:kube-controller-manager`, bound by the default RBAC policy).
    pub controller_manager_cert: PathBuf,
    /// Its key.
    pub controller_manager_key: PathBuf,
    /// The service-account token signing key (private).
    pub service_account_key: PathBuf,
    /// Its public half, which the API server verifies tokens with.
    pub service_account_pub: PathBuf,
}

impl PkiFiles {
    /// The paths [`generate`] writes into `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        PkiFiles {
            ca_cert: dir.join("ca.crt"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            controller_manager_cert: dir.join("controller-manager.crt"),
            controller_manager_key: dir.join("controller-manager.key"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
        }
    }
}

/// Generates a fresh PKI into `dir` (created if needed).
pub fn generate(dir: &Path) -> Result<PkiFiles> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "weft-e2e-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let files = PkiFiles::in_dir(dir);
    write(&files.ca_cert, &ca_cert.pem())?;

    let serving_names = vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        KUBERNETES_SERVICE_IP.to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ];
    let (cert, key) = leaf(
        &ca,
        serving_names,
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write(&files.apiserver_cert, &cert)?;
    write_secret(&files.apiserver_key, &key)?;

    let (cert, key) = leaf(
        &ca,
        Vec::new(),
        "weft-e2e-admin",
        Some("system:masters"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    write(&files.admin_cert, &cert)?;
    write_secret(&files.admin_key, &key)?;

    let (cert, key) = leaf(
        &ca,
        Vec::new(),
        "system:kube-controller-manager",
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    write(&files.controller_manager_cert, &cert)?;
    write_secret(&files.controller_manager_key, &key)?;

    let sa = KeyPair::generate()?;
    write_secret(&files.service_account_key, &sa.serialize_pem())?;
    write(&files.service_account_pub, &sa.public_key_pem())?;

    Ok(files)
}

/// Issues a leaf certificate from `ca`; returns (certificate PEM, key PEM).
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    names: Vec<String>,
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        // Kubernetes reads a client certificate's O as the user's groups.
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).map_err(Error::io(format!("writing {}", path.display())))
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &Path, pem: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write(path, pem)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io(format!("chmod {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_as_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path()).expect("generate");
        for (path, marker) in [
            (&files.ca_cert, "BEGIN CERTIFICATE"),
            (&files.apiserver_cert, "BEGIN CERTIFICATE"),
            (&files.admin_cert, "BEGIN CERTIFICATE"),
            (&files.controller_manager_cert, "BEGIN CERTIFICATE"),
            (&files.apiserver_key, "BEGIN PRIVATE KEY"),
            (&files.admin_key, "BEGIN PRIVATE KEY"),
            (&files.controller_manager_key, "BEGIN PRIVATE KEY"),
            (&files.service_account_key, "BEGIN PRIVATE KEY"),
            (&files.service_account_pub, "BEGIN PUBLIC KEY"),
        ] {
            let text = std::fs::read_to_string(path).expect("read");
            assert!(text.contains(marker), "{} lacks {marker}", path.display());
        }
    }

    #[test]
    fn keys_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path()).expect("generate");
        let mode = std::fs::metadata(&files.admin_key)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "admin key is readable by others");
    }
}
