//! Stopping a node cluster leaves the host as it found it: no processes,
//! no mounts under the cluster folder, no pod bridge or veths, no `KUBE-*`
//! or `CNI-*` chains, no pod network namespaces or cgroups, the fixed
//! folders the kubelet creates gone, and the sysctls it changed put back.
//! What `make cluster-down` runs is the same teardown.

mod node_support;

use std::collections::BTreeMap;
use std::time::Duration;

use weft_e2e::images::BUSYBOX_IMAGE;
use weft_e2e::node::config::BRIDGE;
use weft_e2e::node::host::{self, FIXED_PATHS, SYSCTLS};

fn sysctls() -> BTreeMap<&'static str, Option<String>> {
    SYSCTLS.iter().map(|s| (*s, host::read_sysctl(s))).collect()
}

fn links() -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

#[tokio::test]
async fn stopping_a_node_cluster_puts_the_host_back() {
    let sysctls_before = sysctls();
    let links_before = links();
    let absent_before: Vec<&str> = FIXED_PATHS
        .iter()
        .copied()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    assert!(
        host::leftover_chains().is_empty(),
        "chains left by an earlier run: {:?}",
        host::leftover_chains()
    );

    let cluster = node_support::start_node_cluster()
        .await
        .expect("node cluster starts");
    let dir = cluster.dir().to_path_buf();
    // A pod with a host port, so that portmap adds its chains too.
    cluster
        .kubectl()
        .run_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1
kind: Pod
metadata: {{name: porty, namespace: default}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: {BUSYBOX_IMAGE}
      command: [httpd, -f, -p, '8080', -h, /www]
      ports: [{{containerPort: 8080, hostPort: 18080}}]
"
            ),
        )
        .await
        .expect("pod applied");
    weft_e2e::wait::eventually("pod porty Running", Duration::from_secs(120), || {
        let kubectl = cluster.kubectl();
        async move {
            let out = kubectl
                .run(&["get", "pod", "porty", "-o", "jsonpath={.status.phase}"])
                .await
                .map_err(|e| e.to_string())?;
            if out.stdout == "Running" {
                Ok(())
            } else {
                Err(out.stdout)
            }
        }
    })
    .await
    .expect("the pod runs");

    // The node changed the host, so the checks below check something.
    let chains = host::leftover_chains();
    assert!(
        chains.iter().any(|(_, _, c)| c.starts_with("KUBE-")),
        "{chains:?}"
    );
    assert!(
        chains.iter().any(|(_, _, c)| c.starts_with("CNI-")),
        "{chains:?}"
    );
    assert!(!host::bridge_ports().is_empty(), "no veth on {BRIDGE}");
    assert!(
        !host::mounts_under(&dir).is_empty(),
        "nothing mounted under {}",
        dir.display()
    );
    assert!(!host::pod_processes().is_empty(), "no pod processes");
    let pids = cluster.pids();
    let socket = weft_e2e::node::NodeFiles::new(&dir).containerd_socket();
    assert!(!host::shims_of(&socket).is_empty(), "no containerd shim");
    assert_eq!(
        host::read_sysctl("net/ipv4/ip_forward").as_deref(),
        Some("1")
    );

    let problems = cluster.stop_checked();
    assert!(problems.is_empty(), "teardown problems: {problems:?}");

    let alive: Vec<u32> = pids
        .into_iter()
        .filter(|p| weft_e2e::process::alive(*p))
        .collect();
    assert!(alive.is_empty(), "components still running: {alive:?}");
    assert!(host::shims_of(&socket).is_empty(), "shims still running");
    assert!(
        host::pod_processes().is_empty(),
        "pod processes still running"
    );
    assert!(
        host::kubepods_cgroups().is_empty(),
        "kubepods cgroups left: {:?}",
        host::kubepods_cgroups()
    );
    assert!(
        host::mounts_under(&dir).is_empty(),
        "mounts left: {:?}",
        host::mounts_under(&dir)
    );
    assert!(
        host::leftover_chains().is_empty(),
        "chains left: {:?}",
        host::leftover_chains()
    );
    assert_eq!(links(), links_before, "links differ (bridge or veths left)");
    assert!(!host::link_exists(BRIDGE));
    let netns: Vec<_> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().starts_with("cni-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "pod network namespaces left: {netns:?}");
    for path in absent_before {
        assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    }
    assert_eq!(sysctls(), sysctls_before, "sysctls not put back");
    assert!(
        weft_e2e::node::Owner::load().is_none(),
        "the node is still claimed"
    );
}
