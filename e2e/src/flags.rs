//! The command lines of the cluster's three components: which flags make a
//! loopback etcd, an API server with real authentication, authorization,
//! admission and audit, and a controller manager with just the controllers
//! a workload needs. Pure functions of paths and ports.

use std::path::Path;

use crate::pki::{self, PkiFiles};

/// The controllers the manager runs: Deployments make ReplicaSets and Pods,
/// namespaces are deleted, and every namespace gets its `default` service
/// account; and what a node's workloads need: Jobs and CronJobs,
/// StatefulSets and DaemonSets, EndpointSlices for Services, the node's
/// lifecycle (without it the node keeps its `not-ready` taint), the
/// `kube-root-ca.crt` ConfigMap every pod's token volume mounts, pod GC,
/// TTLs, and PodDisruptionBudgets.
pub const CONTROLLERS: &str = "deployment,replicaset,garbagecollector,namespace,serviceaccount,\
serviceaccount-token,job,cronjob,statefulset,daemonset,endpointslice,endpointslicemirroring,\
nodelifecycle,root-ca-cert-publisher,podgc,ttl,ttl-after-finished,disruption";

/// Where the API server listens: on loopback for a cluster without a node,
/// or on the pod bridge's gateway, the one address pods can reach that
/// exists only on this machine.
#[derive(Debug, Clone, Copy)]
pub enum Listen<'a> {
    /// 127.0.0.1, no kubelet to talk to.
    Loopback,
    /// The bridge gateway, with the certificates to call the kubelet.
    Node(&'a pki::NodeCerts),
}

impl Listen<'_> {
    /// The address the API server binds and advertises.
    pub fn address(&self) -> &'static str {
        match self {
            Listen::Loopback => "127.0.0.1",
            Listen::Node(_) => crate::node::config::GATEWAY,
        }
    }
}

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

/// kube-apiserver on `listen`:`port` backed by etcd on `etcd_port`.
pub fn apiserver(
    dir: &Path,
    pki: &PkiFiles,
    etcd_port: u16,
    port: u16,
    audit_policy: &Path,
    audit_log: &Path,
    listen: Listen<'_>,
) -> Vec<String> {
    let address = listen.address();
    let mut flags = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--bind-address={address}"),
        format!("--advertise-address={address}"),
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
        "--allow-privileged=true".to_string(),
        format!("--audit-policy-file={}", audit_policy.display()),
        format!("--audit-log-path={}", audit_log.display()),
        "--audit-log-format=json".to_string(),
        "--profiling=false".to_string(),
    ];
    match listen {
        // The `kubernetes` Endpoints may not hold a loopback address.
        Listen::Loopback => flags.push("--endpoint-reconciler-type=none".to_string()),
        Listen::Node(node) => flags.extend([
            // logs, exec and port-forward: the API server calls the kubelet
            // with its own client certificate and verifies the kubelet's.
            format!("--kubelet-certificate-authority={}", pki.ca_cert.display()),
            format!(
                "--kubelet-client-certificate={}",
                node.apiserver_kubelet_client_cert.display()
            ),
            format!(
                "--kubelet-client-key={}",
                node.apiserver_kubelet_client_key.display()
            ),
            "--kubelet-preferred-address-types=InternalIP".to_string(),
        ]),
    }
    flags
}

/// kube-scheduler talking to the API server through `kubeconfig`.
pub fn scheduler(kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".to_string(),
        // Nothing scrapes it; not listening means no port to leak.
        "--secure-port=0".to_string(),
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
        PkiFiles::in_dir(Path::new("/pki"))
    }

    #[test]
    fn everything_listens_on_loopback_only() {
        let dir = Path::new("/c");
        let flags: Vec<String> = etcd(dir, 1, 2)
            .into_iter()
            .chain(apiserver(
                dir,
                &pki(),
                1,
                3,
                &dir.join("p"),
                &dir.join("a"),
                Listen::Loopback,
            ))
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
            Listen::Loopback,
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
            "job",
            "endpointslice",
            "nodelifecycle",
            "root-ca-cert-publisher",
            "podgc",
            "ttl-after-finished",
        ] {
            assert!(controllers.split(',').any(|x| x == c), "missing {c}");
        }
    }

    #[test]
    fn a_node_cluster_listens_on_the_bridge_and_verifies_the_kubelet() {
        let pki = pki();
        let flags = apiserver(
            Path::new("/c"),
            &pki,
            1,
            3,
            Path::new("/p"),
            Path::new("/a"),
            Listen::Node(&pki.node),
        );
        for want in [
            "--bind-address=10.89.0.1",
            "--advertise-address=10.89.0.1",
            "--kubelet-certificate-authority=/pki/ca.crt",
            "--kubelet-client-certificate=/pki/apiserver-kubelet-client.crt",
        ] {
            assert!(flags.contains(&want.to_string()), "missing {want}");
        }
        assert!(
            !flags
                .iter()
                .any(|f| f.starts_with("--endpoint-reconciler-type"))
        );
    }
}
