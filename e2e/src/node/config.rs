//! The node's configuration files as pure functions of its folder: the
//! containerd config, the CNI network, the kubelet's and kube-proxy's
//! component configs and the CoreDNS Corefile. Everything that exists only
//! because of this kind of machine (no CAP_SYS_RESOURCE, cgroup v1 without
//! systemd, no registry) is explained where it is set.

use std::path::Path;

use serde_json::{Value, json};

/// The node's name. Not the machine's hostname: `vm` resolves to 127.0.0.1
/// in /etc/hosts, and the API server refuses to proxy to a loopback node.
pub const NODE_NAME: &str = "weft-node";
/// The Linux bridge the pods are plugged into. The harness creates it before
/// the API server starts, because the API server listens on its gateway.
pub const BRIDGE: &str = "weft-node0";
/// The node's pod range. It exists only on this machine, on [`BRIDGE`].
pub const POD_CIDR: &str = "10.89.0.0/24";
/// The bridge's own address: the pods' gateway, and the address the API
/// server and the kubelet listen on, so that pods can reach them while
/// nothing listens on an address that leaves the machine.
pub const GATEWAY: &str = "10.89.0.1";
/// The prefix length of [`POD_CIDR`].
pub const POD_PREFIX: u8 = 24;
/// The cluster DNS Service's ClusterIP (inside `pki::SERVICE_CIDR`).
pub const CLUSTER_DNS: &str = "10.0.0.10";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The kubelet's API port on [`GATEWAY`].
pub const KUBELET_PORT: u16 = 10250;
/// The kubelet's healthz port on 127.0.0.1.
pub const KUBELET_HEALTHZ_PORT: u16 = 10248;
/// kube-proxy's healthz port on 127.0.0.1.
pub const PROXY_HEALTHZ_PORT: u16 = 10256;
/// kube-proxy's metrics port on 127.0.0.1.
pub const PROXY_METRICS_PORT: u16 = 10249;
/// The CNI network's name (and its conflist's).
pub const CNI_NETWORK: &str = "weft-node";
/// Where Debian's containernetworking-plugins installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// containerd's config: its own root, state, socket and runc root under
/// `dir`, so it never touches a containerd the machine already runs.
pub fn containerd(dir: &Path, sandbox_image: &str) -> String {
    let d = |sub: &str| dir.join(sub).display().to_string();
    format!(
        r#"# Written by weft-e2e for the local node; see e2e/src/node/config.rs.
version = 2
root = "{root}"
state = "{state}"
# Snapshotters and plugins this node never uses stay off, so containerd's log
# shows only what matters.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The kubelet's streaming server for exec, attach and port-forward stays
  # on loopback; the kubelet proxies to it.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Pod network namespaces under the state folder, not /run/netns, so that
  # unmounting the cluster folder is all it takes to remove them.
  netns_mounts_under_state_dir = true
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj; CRI asks for -998 for the pause container, and every
  # sandbox would fail with "can't get final child's PID from pipe: EOF".
  # Restricting the value to the caller's own floor avoids that.
  restrict_oom_score_adj = true
  # No registry is reachable: every image is imported, none is pulled.
  max_concurrent_downloads = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 without systemd as PID 1: cgroupfs, as the kubelet.
        SystemdCgroup = false
        # runc's state under the cluster folder, not /run/containerd/runc.
        Root = "{runc_root}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = d("containerd/containerd.sock"),
        runc_root = d("containerd/runc"),
        cni_bin = CNI_BIN_DIR,
        cni_conf = d("cni/net.d"),
    )
}

/// The CNI network: the bridge, host-local addresses from [`POD_CIDR`]
/// (their state under `dir`), portmap, and masquerade for traffic that
/// leaves the pod range, with loopback added by CRI itself.
pub fn cni_conflist(dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                // A pod that calls a Service whose endpoint is itself: the
                // packet goes out and back the same bridge port.
                "hairpinMode": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": dir.join("cni/ipam").display().to_string(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
}

/// Paths the kubelet config names.
#[derive(Debug, Clone)]
pub struct KubeletPaths<'a> {
    /// The cluster CA, which client certificates must chain to.
    pub client_ca: &'a Path,
    /// The kubelet's serving certificate and key.
    pub serving_cert: &'a Path,
    /// Its key.
    pub serving_key: &'a Path,
    /// containerd's socket.
    pub runtime_socket: &'a Path,
    /// The resolv.conf pods inherit for names outside the cluster.
    pub resolv_conf: &'a Path,
}

/// The kubelet's `KubeletConfiguration` (JSON, which is YAML).
pub fn kubelet(paths: &KubeletPaths<'_>) -> Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": KUBELET_PORT,
        // The unauthenticated read-only port stays closed.
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": paths.serving_cert.display().to_string(),
        "tlsPrivateKeyFile": paths.serving_key.display().to_string(),
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": paths.client_ca.display().to_string()}
        },
        // Every call to the kubelet's API is a SubjectAccessReview: the
        // API server's client may, because it is bound to
        // system:kubelet-api-admin; nobody else may.
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": format!("unix://{}", paths.runtime_socket.display()),
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        // A resolv.conf with no nameserver: nothing in a pod resolves names
        // outside the cluster, so nothing leaves the machine by name.
        "resolvConf": paths.resolv_conf.display().to_string(),
        // PID 1 here is not systemd and the hierarchy is cgroup v1 (a v2
        // mount sits beside it): cgroupfs is the only driver that works.
        "cgroupDriver": "cgroupfs",
        // Kubernetes 1.31+ refuses cgroup v1 unless told otherwise.
        "failCgroupV1": false,
        // The machine may have swap; the node is for tests, not for
        // guaranteeing memory.
        "failSwapOn": false,
        // Eviction would remove pods whose images no registry can bring back
        // when the shared disk fills; "0%" turns every threshold off ("0" is
        // rejected).
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%"
        },
        // Images are imported, never pulled: image GC must never remove one.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        // The kubelet may not tune kernel parameters it finds "wrong" for
        // its taste beyond the ones cluster-down puts back.
        "protectKernelDefaults": false,
        "serializeImagePulls": false,
        "registerNode": true,
        "maxPods": 60,
        "podPidsLimit": -1,
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "logging": {"format": "text"}
    })
}

/// kube-proxy's `KubeProxyConfiguration`, in iptables mode.
pub fn kube_proxy(kubeconfig: &Path) -> Value {
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": kubeconfig.display().to_string()},
        "hostnameOverride": NODE_NAME,
        "bindAddress": GATEWAY,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": format!("127.0.0.1:{PROXY_HEALTHZ_PORT}"),
        // Loopback only (it has no "off").
        "metricsBindAddress": format!("127.0.0.1:{PROXY_METRICS_PORT}"),
        // Zero means "leave the kernel's value alone": conntrack sysctls
        // are the machine's, and cluster-down could not know what to put
        // back after a restart.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s"
        },
        // Node ports on 127.0.0.1 need route_localnet=1 on every interface.
        "iptables": {"localhostNodePorts": false, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "nodePortAddresses": [format!("{GATEWAY}/32")]
    })
}

/// The resolv.conf the kubelet hands to pods for names outside the cluster:
/// none, so only the cluster DNS answers.
pub const RESOLV_CONF: &str = "# weft-e2e: pods resolve cluster names only\noptions ndots:5\n";

/// CoreDNS's Corefile: the cluster zone and reverse zones from the API
/// server, health and readiness for the probes, nothing forwarded out.
pub fn corefile() -> String {
    format!(
        ".:53 {{\n    errors\n    health :8080\n    ready :8181\n    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 5\n    }}\n    cache 5\n    loadbalance\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_keeps_to_the_cluster_folder() {
        let text = containerd(Path::new("/c"), "localhost/weft/pause:1");
        for want in [
            r#"root = "/c/containerd/root""#,
            r#"state = "/c/containerd/state""#,
            r#"address = "/c/containerd/containerd.sock""#,
            r#"Root = "/c/containerd/runc""#,
            r#"conf_dir = "/c/cni/net.d""#,
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "SystemdCgroup = false",
            r#"sandbox_image = "localhost/weft/pause:1""#,
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        // The comments may name the defaults; the settings must not.
        let settings: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert!(!settings.contains("/run/containerd"), "{text}");
        assert!(!settings.contains("/var/lib/containerd"), "{text}");
    }

    #[test]
    fn the_pod_network_is_the_bridge_range() {
        let conf = cni_conflist(Path::new("/c"));
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["bridge"], BRIDGE);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], POD_CIDR);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], GATEWAY);
        assert_eq!(bridge["ipam"]["dataDir"], "/c/cni/ipam");
        assert_eq!(conf["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn the_kubelet_is_locked_down_and_fits_this_machine() {
        let p = Path::new;
        let conf = kubelet(&KubeletPaths {
            client_ca: p("/pki/ca.crt"),
            serving_cert: p("/pki/kubelet.crt"),
            serving_key: p("/pki/kubelet.key"),
            runtime_socket: p("/c/containerd/containerd.sock"),
            resolv_conf: p("/c/resolv.conf"),
        });
        assert_eq!(conf["readOnlyPort"], 0);
        assert_eq!(conf["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(conf["authorization"]["mode"], "Webhook");
        assert_eq!(conf["cgroupDriver"], "cgroupfs");
        assert_eq!(conf["failCgroupV1"], false);
        assert_eq!(conf["failSwapOn"], false);
        assert_eq!(conf["imageGCHighThresholdPercent"], 100);
        assert_eq!(conf["evictionHard"]["memory.available"], "0%");
        assert_eq!(conf["address"], GATEWAY);
        assert_eq!(
            conf["containerRuntimeEndpoint"],
            "unix:///c/containerd/containerd.sock"
        );
    }

    #[test]
    fn kube_proxy_runs_iptables_and_leaves_conntrack_alone() {
        let conf = kube_proxy(Path::new("/k"));
        assert_eq!(conf["mode"], "iptables");
        assert_eq!(conf["conntrack"]["maxPerCore"], 0);
        assert_eq!(conf["iptables"]["localhostNodePorts"], false);
        assert_eq!(conf["clusterCIDR"], POD_CIDR);
    }

    #[test]
    fn dns_forwards_nothing_out() {
        let core = corefile();
        assert!(core.contains("kubernetes cluster.local"));
        assert!(!core.contains("forward"));
    }
}
