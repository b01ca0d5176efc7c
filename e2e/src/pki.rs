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
    /// The node's certificates (kubelet, kube-proxy, scheduler, and the API
    /// server's client for the kubelet).
    pub node: NodeCerts,
}

/// The client and serving certificates of the node's components, each for
/// the user the default RBAC policy or the Node authorizer expects.
#[derive(Debug, Clone)]
pub struct NodeCerts {
    /// The kubelet's client certificate: `system:node:<node>` in group
    /// `system:nodes`, which the Node authorizer and NodeRestriction limit
    /// to its own node and pods.
    pub kubelet_client_cert: PathBuf,
    /// Its key.
    pub kubelet_client_key: PathBuf,
    /// The kubelet's serving certificate, for the node's address; the API
    /// server verifies it with the cluster CA.
    pub kubelet_serving_cert: PathBuf,
    /// Its key.
    pub kubelet_serving_key: PathBuf,
    /// The API server's client certificate towards kubelets (logs, exec,
    /// port-forward), bound to `system:kubelet-api-admin`.
    pub apiserver_kubelet_client_cert: PathBuf,
    /// Its key.
    pub apiserver_kubelet_client_key: PathBuf,
    /// kube-proxy's client certificate (`system:kube-proxy`).
    pub kube_proxy_cert: PathBuf,
    /// Its key.
    pub kube_proxy_key: PathBuf,
    /// kube-scheduler's client certificate (`system:kube-scheduler`).
    pub scheduler_cert: PathBuf,
    /// Its key.
    pub scheduler_key: PathBuf,
}

/// The user the API server calls kubelets as.
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

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
            node: NodeCerts {
                kubelet_client_cert: dir.join("kubelet-client.crt"),
                kubelet_client_key: dir.join("kubelet-client.key"),
                kubelet_serving_cert: dir.join("kubelet-serving.crt"),
                kubelet_serving_key: dir.join("kubelet-serving.key"),
                apiserver_kubelet_client_cert: dir.join("apiserver-kubelet-client.crt"),
                apiserver_kubelet_client_key: dir.join("apiserver-kubelet-client.key"),
                kube_proxy_cert: dir.join("kube-proxy.crt"),
                kube_proxy_key: dir.join("kube-proxy.key"),
                scheduler_cert: dir.join("scheduler.crt"),
                scheduler_key: dir.join("scheduler.key"),
            },
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
        // The node cluster's API server listens on the pod bridge's gateway.
        crate::node::config::GATEWAY.to_string(),
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

    let node = &files.node;
    let node_name = crate::node::config::NODE_NAME;
    let clients = [
        (
            format!("system:node:{node_name}"),
            Some("system:nodes"),
            &node.kubelet_client_cert,
            &node.kubelet_client_key,
        ),
        (
            APISERVER_KUBELET_CLIENT.to_string(),
            None,
            &node.apiserver_kubelet_client_cert,
            &node.apiserver_kubelet_client_key,
        ),
        (
            "system:kube-proxy".to_string(),
            None,
            &node.kube_proxy_cert,
            &node.kube_proxy_key,
        ),
        (
            "system:kube-scheduler".to_string(),
            None,
            &node.scheduler_cert,
            &node.scheduler_key,
        ),
    ];
    for (user, group, cert_path, key_path) in clients {
        let (cert, key) = leaf(
            &ca,
            Vec::new(),
            &user,
            group,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        write(cert_path, &cert)?;
        write_secret(key_path, &key)?;
    }
    let (cert, key) = leaf(
        &ca,
        vec![
            crate::node::config::GATEWAY.to_string(),
            node_name.to_string(),
        ],
        &format!("system:node:{node_name}"),
        Some("system:nodes"),
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write(&node.kubelet_serving_cert, &cert)?;
    write_secret(&node.kubelet_serving_key, &key)?;

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
