//! Kubeconfig files for the local cluster: one context, one user
//! authenticated by a client certificate, the cluster CA by path.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};

/// The context (and cluster) name written into every kubeconfig.
pub const CONTEXT: &str = "weft-e2e";

/// Writes a kubeconfig at `path` for `server`, trusting `ca` and presenting
/// `cert`/`key`. Paths are written as given, so pass absolute ones.
pub fn write(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    cert: &Path,
    key: &Path,
) -> Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": {
                "server": server,
                "certificate-authority": ca,
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate": cert,
                "client-key": key,
            },
        }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": user },
        }],
        "current-context": CONTEXT,
    });
    let text = serde_yaml::to_string(&config)?;
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_reads_what_we_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        write(
            &path,
            "https://127.0.0.1:6443",
            Path::new("/pki/ca.crt"),
            "admin",
            Path::new("/pki/admin.crt"),
            Path::new("/pki/admin.key"),
        )
        .expect("write");
        let parsed = kube::config::Kubeconfig::read_from(&path).expect("parse");
        assert_eq!(parsed.current_context.as_deref(), Some(CONTEXT));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/pki/ca.crt")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(user.client_key.as_deref(), Some("/pki/admin.key"));
    }
}
