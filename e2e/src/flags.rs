//! The command lines of the cluster's three components: which flags make a
//! loopback etcd, an API server with real authentication, authorization,
//! admission and audit, and a controller manager with just the controllers
//! a workload needs. Pure functions of paths and ports.

use std::path::Path;

use crate::pki::{self, PkiFiles};

/// The controllers the manager runs: enough for Deployments to make
/// ReplicaSets and Pods, for namespaces to be deleted, and for every
/// namespace to get its `default` service account.
pub const CONTROLLERS: &str =
    "deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token";

/// etcd with its data in `dir/etcd`, serving clients on `client_port`.
pub fn etcd(dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=weft-e2e".to_string(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=weft-e2e={peer}"),
        // A test cluster's data is thrown away: skip fsync, which
        // dominates etcd's latency on a shared disk.
        "--unsafe-no-fsync=true".to_string(),
        "--log-level=warn".to_string(),
    ]
}

/// kube-apiserver on 127.0.0.1:`port` backed by etcd on `etcd_port`.
pub fn apiserver(
    dir: &Path,
    pki: &PkiFiles,
    etcd_port: u16,
    port: u16,
    audit_policy: &Path,
    audit_log: &Path,
) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", pki.apiserver_cert.display()),
        format!("--tls-private-key-file={}", pki.apiserver_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        "--authorization-mode=Node,RBAC".to_string(),
        // The defaults (NamespaceLifecycle, ServiceAccount, the webhook
        // plugins, ...) stay on; NodeRestriction completes Node authz.
        "--enable-admission-plugins=NodeRestriction".to_string(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        format!(
            "--service-account-key-file={}",
            pki.service_account_pub.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            pki.service_account_key.display()
        ),
        format!("--service-cluster-ip-range={}", pki::SERVICE_CIDR),
        // The `kubernetes` Endpoints may not hold a loopback address.
        "--endpoint-reconciler-type=none".to_string(),
        "--allow-privileged=true".to_string(),
        format!("--audit-policy-file={}", audit_policy.display()),
        format!("--audit-log-path={}", audit_log.display()),
        "--audit-log-format=json".to_string(),
        "--profiling=false".to_string(),
    ]
}

/// kube-controller-manager talking to the API server through `kubeconfig`.
pub fn controller_manager(kubeconfig: &Path, pki: &PkiFiles) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--controllers={CONTROLLERS}"),
        // Each controller acts as its own service account, so RBAC in the
        // test cluster is what it is in a real one.
        "--use-service-account-credentials=true".to_string(),
        format!("--root-ca-file={}", pki.ca_cert.display()),
        format!(
            "--service-account-private-key-file={}",
            pki.service_account_key.display()
        ),
        "--leader-elect=false".to_string(),
        // Nothing scrapes it; not listening means no port to leak.
        "--secure-port=0".to_string(),
        "--profiling=false".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> PkiFiles {
        let p = |name: &str| Path::new("/pki").join(name);
        PkiFiles {
            ca_cert: p("ca.crt"),
            apiserver_cert: p("apiserver.crt"),
            apiserver_key: p("apiserver.key"),
            admin_cert: p("admin.crt"),
            admin_key: p("admin.key"),
            controller_manager_cert: p("cm.crt"),
            controller_manager_key: p("cm.key"),
            service_account_key: p("sa.key"),
            service_account_pub: p("sa.pub"),
        }
    }

    #[test]
    fn everything_listens_on_loopback_only() {
        let dir = Path::new("/c");
        let flags: Vec<String> = etcd(dir, 1, 2)
            .into_iter()
            .chain(apiserver(dir, &pki(), 1, 3, &dir.join("p"), &dir.join("a")))
            .collect();
        let network = [
            "--listen",
            "--advertise",
            "--bind",
            "--etcd-servers",
            "--initial-",
        ];
        let bound: Vec<&String> = flags
            .iter()
            .filter(|f| network.iter().any(|n| f.starts_with(n)))
            .collect();
        assert_eq!(bound.len(), 8, "{bound:?}");
        for flag in bound {
            assert!(flag.contains("127.0.0.1"), "{flag}");
        }
        assert!(controller_manager(dir, &pki()).contains(&"--secure-port=0".to_string()));
    }

    #[test]
    fn the_api_server_authorizes_and_signs_tokens() {
        let flags = apiserver(
            Path::new("/c"),
            &pki(),
            1,
            3,
            Path::new("/p"),
            Path::new("/a"),
        );
        for want in [
            "--authorization-mode=Node,RBAC",
            "--client-ca-file=/pki/ca.crt",
            "--service-account-key-file=/pki/sa.pub",
            "--service-account-signing-key-file=/pki/sa.key",
            "--audit-policy-file=/p",
        ] {
            assert!(flags.contains(&want.to_string()), "missing {want}");
        }
    }

    #[test]
    fn the_controller_manager_runs_the_workload_controllers() {
        let flags = controller_manager(Path::new("/k"), &pki());
        let controllers = flags
            .iter()
            .find_map(|f| f.strip_prefix("--controllers="))
            .expect("--controllers");
        for c in [
            "deployment",
            "replicaset",
            "garbagecollector",
            "namespace",
            "serviceaccount",
        ] {
            assert!(controllers.split(',').any(|x| x == c), "missing {c}");
        }
    }
}
