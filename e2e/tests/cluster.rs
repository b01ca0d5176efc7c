//! The local cluster itself: it starts, the kubectl built with it works
//! against it, its controllers turn a Deployment into a ReplicaSet and Pods,
//! and stopping it (normally, during a panic, or through `weft-e2e down`)
//! leaves no process and no listening port behind.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use weft_e2e::process::alive;
use weft_e2e::{Cluster, ports, wait};

const CONVERGE: Duration = Duration::from_secs(60);

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: e2e-smoke
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.invalid/web:1
";

#[tokio::test]
async fn a_deployment_becomes_a_replica_set_and_pending_pods() {
    let cluster = Cluster::start().await.expect("cluster starts");
    let kubectl = cluster.kubectl();
    assert!(
        kubectl.bin().starts_with(weft_e2e::Binaries::default_dir()),
        "tests use the kubectl built with the cluster, not {}",
        kubectl.bin().display()
    );

    let version = kubectl
        .run(&["version", "-o", "json"])
        .await
        .expect("kubectl version");
    let version: serde_json::Value = serde_json::from_str(&version.stdout).expect("json");
    // Built from one release, stamped with its version (not v0.0.0-master).
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(server.starts_with("v1."), "server version {server:?}");
    assert_eq!(version["clientVersion"]["gitVersion"], server);

    kubectl
        .run(&["create", "namespace", "e2e-smoke"])
        .await
        .expect("create namespace");
    kubectl
        .run_stdin(&["apply", "-f", "-"], DEPLOYMENT)
        .await
        .expect("apply deployment");

    let client = cluster.client();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "e2e-smoke");
    let rs = wait::eventually("a ReplicaSet owned by deploy/web", CONVERGE, || {
        let api = replica_sets.clone();
        async move {
            let list = api
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|rs| owned_by(&rs.metadata, "Deployment", "web"))
                .ok_or_else(|| "no ReplicaSet yet".to_string())
        }
    })
    .await
    .expect("deployment controller");
    let rs_name = rs.metadata.name.clone().unwrap_or_default();

    let pods: Api<Pod> = Api::namespaced(client, "e2e-smoke");
    let pods = wait::eventually("2 pods owned by the ReplicaSet", CONVERGE, || {
        let api = pods.clone();
        let rs_name = rs_name.clone();
        async move {
            let list = api
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            let owned: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| owned_by(&p.metadata, "ReplicaSet", &rs_name))
                .collect();
            if owned.len() == 2 {
                Ok(owned)
            } else {
                Err(format!("{} pods", owned.len()))
            }
        }
    })
    .await
    .expect("replicaset controller");
    for pod in &pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        // No node exists, so nothing schedules or runs them.
        assert_eq!(phase, Some("Pending"), "{:?}", pod.metadata.name);
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref());
        assert_eq!(sa, Some("default"), "ServiceAccount admission ran");
    }

    let pids = cluster.pids();
    let ports = cluster.ports().to_vec();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    assert!(ports::listening(ports[2]), "the API server listens");
    drop(cluster);
    assert_nothing_left(&pids, &ports);
}

#[test]
fn a_panicking_test_still_tears_the_cluster_down() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = std::sync::mpsc::channel();
    // On this thread, which lives on: the components' parent-death signal
    // cannot be what stops them, only the cluster's Drop during unwinding.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async move {
            let cluster = Cluster::start().await.expect("cluster starts");
            tx.send((
                cluster.pids(),
                cluster.ports().to_vec(),
                cluster.dir().to_path_buf(),
            ))
            .expect("send");
            panic!("a test failing with the cluster up");
        })
    }));
    assert!(outcome.is_err(), "the inner test panicked");
    let (pids, ports, dir) = rx.recv().expect("the cluster had started");
    assert_nothing_left(&pids, &ports);
    // A failed test keeps the folder for a post-mortem, with the logs.
    assert!(dir.join("kube-apiserver.log").is_file());
    std::fs::remove_dir_all(&dir).expect("remove the kept folder");
}

#[tokio::test]
async fn up_and_down_leave_a_usable_cluster_then_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster_dir = dir.path().join("cluster");
    let bin = env!("CARGO_BIN_EXE_weft-e2e");

    let up = tokio::process::Command::new(bin)
        .arg("--dir")
        .arg(&cluster_dir)
        .arg("up")
        .output()
        .await
        .expect("run up");
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "up failed: {stdout}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let kubeconfig = cluster_dir.join("kubeconfig");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );

    // The cluster outlived the `up` process: kubectl reaches it.
    let state = weft_e2e::state::ClusterState::load(&cluster_dir)
        .expect("state")
        .expect("a recorded cluster");
    let kubectl = weft_e2e::Kubectl::new(
        &weft_e2e::Binaries::in_dir(&weft_e2e::Binaries::default_dir()).kubectl,
        &kubeconfig,
    );
    let namespaces = kubectl
        .run(&["get", "namespaces", "-o", "name"])
        .await
        .expect("kubectl get namespaces");
    assert!(
        namespaces.stdout.contains("namespace/default"),
        "{}",
        namespaces.stdout
    );

    let down = std::process::Command::new(bin)
        .arg("--dir")
        .arg(&cluster_dir)
        .arg("down")
        .output()
        .expect("run down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let pids: Vec<u32> = state.components.iter().map(|c| c.pid).collect();
    assert_nothing_left(&pids, &state.ports);
    assert!(!cluster_dir.exists(), "down removes the cluster folder");
    // `up` starts the node too, and `down` puts the host back.
    assert!(state.node, "up starts a node");
    assert!(
        weft_e2e::node::host::leftover_chains().is_empty(),
        "down left iptables chains: {:?}",
        weft_e2e::node::host::leftover_chains()
    );
    assert!(!weft_e2e::node::host::link_exists(
        weft_e2e::node::config::BRIDGE
    ));
    assert!(
        weft_e2e::node::Owner::load().is_none(),
        "the node is still claimed"
    );
}

fn owned_by(meta: &kube::api::ObjectMeta, kind: &str, name: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == kind && o.name == name && o.controller == Some(true))
}

fn assert_nothing_left(pids: &[u32], ports: &[u16]) {
    for pid in pids {
        assert!(!alive(*pid), "process {pid} survived teardown");
    }
    for port in ports {
        assert!(!ports::listening(*port), "port {port} still listening");
    }
}
