//! The node suite: weft on a real kubelet node. One node cluster (the
//! machine has one node) with weft installed by `weft install | kubectl
//! apply -f -`; the trials run one after another against it, and the
//! cluster is torn down at the end, its host changes undone.
//!
//! Needs root (containerd, CNI, iptables). Run alone with
//! `cargo test -p weft-e2e --test node`; a filter selects trials as usual.

mod node_support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use node_support::{NodeEnv, TrialResult, name, pod_ip, ready_column, web_deployment};
use tokio::io::AsyncBufReadExt as _;
use weft_e2e::images::{BUSYBOX_IMAGE, REGISTRY, TAG};
use weft_e2e::metrics::metric;
use weft_e2e::node::config::NODE_NAME;
use weft_e2e::node::node_ready;
use weft_e2e::wait::eventually;

fn main() {
    // One after another: some trials stop parts of the control plane.
    let all = trials![
        node_is_ready_with_its_own_credentials,
        the_kubelet_serves_logs_exec_and_port_forward,
        cluster_dns_resolves_services_and_headless_names,
        weft_runs_in_the_cluster_behind_its_service,
        rollout_restart_gives_injected_pods_ready_2_of_2,
        a_classic_sidecar_pod_reaches_2_of_2,
        a_job_completes_in_an_injected_namespace,
        meshed_pods_talk_mtls_with_each_others_identities,
        an_unmeshed_pod_reaches_a_meshed_one_in_plaintext_unless_identity_is_required,
        a_proxy_without_identity_stays_unready_until_identity_returns,
    ];
    node_support::suite::run("node", all, None);
}

async fn node_is_ready_with_its_own_credentials(env: &NodeEnv) -> TrialResult {
    let nodes: Api<Node> = Api::all(env.cluster.client());
    let node = nodes.get(NODE_NAME).await.map_err(|e| e.to_string())?;
    if !node_ready(&node) {
        return Err(format!("{NODE_NAME} is not Ready: {:?}", node.status));
    }
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    if let Some(t) = taints
        .iter()
        .find(|t| t.key.starts_with("node.kubernetes.io/"))
    {
        return Err(format!("the node keeps taint {}", t.key));
    }
    // The kubelet's own kubeconfig is the node's identity, and the Node
    // authorizer keeps it to what its own pods need.
    let kubelet = env.cluster.dir().join("kubelet.kubeconfig");
    let kubelet = kubelet.to_string_lossy();
    let whoami = env
        .kubectl(&[
            "--kubeconfig",
            &kubelet,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await?;
    if whoami.trim() != format!("system:node:{NODE_NAME}") {
        return Err(format!("the kubelet authenticates as {whoami:?}"));
    }
    match env
        .kubectl(&["--kubeconfig", &kubelet, "get", "secrets", "-n", "weft"])
        .await
    {
        Err(e) if e.contains("Forbidden") || e.contains("forbidden") => Ok(()),
        Err(e) => Err(format!(
            "listing secrets as the node failed, but not with Forbidden: {e}"
        )),
        Ok(out) => Err(format!("the node may list every Secret in weft: {out}")),
    }
}

async fn the_kubelet_serves_logs_exec_and_port_forward(env: &NodeEnv) -> TrialResult {
    let ns = "node-basics";
    env.namespace(ns, false).await?;
    env.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: echo, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: {BUSYBOX_IMAGE}
      command: [sh, -c, 'echo weft-e2e-started; exec httpd -f -p 8080 -h /www']
      readinessProbe:
        httpGet: {{path: /index.html, port: 8080}}
        periodSeconds: 1
"
    ))
    .await?;
    env.ready_pods(ns, "", 1).await?;
    let logs = env.kubectl(&["logs", "-n", ns, "echo"]).await?;
    if !logs.contains("weft-e2e-started") {
        return Err(format!("kubectl logs: {logs:?}"));
    }
    let host = env.exec(ns, "echo", "app", &["hostname"]).await?;
    if host.trim() != "echo" {
        return Err(format!("kubectl exec hostname: {host:?}"));
    }
    let mut forward = env
        .cluster
        .kubectl()
        .command()
        .args(["port-forward", "-n", ns, "pod/echo", "0:8080"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = forward.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            // "Forwarding from 127.0.0.1:PORT -> 8080"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
            }
        }
        None
    })
    .await
    .map_err(|_| "kubectl port-forward printed no port")?
    .ok_or("kubectl port-forward ended without a port")?;
    let r = weft_e2e::http::get(port, "/index.html", Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let _ = forward.kill().await;
    if r.status != 200 || r.body.trim() != "weft e2e" {
        return Err(format!("through port-forward: {} {:?}", r.status, r.body));
    }
    Ok(())
}

async fn cluster_dns_resolves_services_and_headless_names(env: &NodeEnv) -> TrialResult {
    let ns = "node-dns";
    env.namespace(ns, false).await?;
    env.apply(&web_deployment(ns, "web", &[])).await?;
    env.apply(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: web-svc, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-headless, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{port: 8080}}]
"
    ))
    .await?;
    env.apply(&web_deployment(ns, "client", &[])).await?;
    let web = env.ready_pods(ns, "app=web", 1).await?;
    let web_ip = pod_ip(&web[0])?;
    let client = name(&env.ready_pods(ns, "app=client", 1).await?[0]);
    let cluster_ip = env
        .kubectl(&[
            "get",
            "svc",
            "-n",
            ns,
            "web-svc",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .await?;
    // busybox's nslookup asks for the name as given before the search
    // list, so it gets the full names; wget below resolves the short ones
    // through the resolver and the search list, as an app does.
    for (query, want) in [
        ("web-svc.node-dns.svc.cluster.local", cluster_ip.trim()),
        ("web-headless.node-dns.svc.cluster.local", web_ip.as_str()),
    ] {
        let client = &client;
        eventually(
            &format!("{query} resolving to {want}"),
            Duration::from_secs(30),
            || async move {
                let out = env
                    .exec(ns, client, "app", &["timeout", "5", "nslookup", query])
                    .await?;
                if out.contains(want) { Ok(()) } else { Err(out) }
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    // By name, through the ClusterIP (kube-proxy's DNAT).
    for url in [
        "http://web-svc/index.html",
        "http://web-svc.node-dns/index.html",
    ] {
        let page = env
            .exec(ns, &client, "app", &["timeout", "10", "wget", "-qO-", url])
            .await?;
        if page.trim() != "weft e2e" {
            return Err(format!("{url} answered {page:?}"));
        }
    }
    Ok(())
}

async fn weft_runs_in_the_cluster_behind_its_service(env: &NodeEnv) -> TrialResult {
    let pods: Api<Pod> = Api::namespaced(env.cluster.client(), "weft");
    let pods = pods
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    for (component, image) in [
        ("weft-injector", "weft-injector"),
        ("weft-control", "weft-control"),
    ] {
        let want = format!("{REGISTRY}/{image}:{TAG}");
        let running: Vec<&Pod> = pods
            .iter()
            .filter(|p| name(p).starts_with(component) && node_support::all_ready(p))
            .collect();
        if running.is_empty() {
            return Err(format!(
                "no Ready {component} pod: {}",
                node_support::summary(&pods)
            ));
        }
        for p in running {
            let images: Vec<String> = p
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().filter_map(|c| c.image.clone()))
                .collect();
            if images != [want.clone()] {
                return Err(format!("{} runs {images:?}, not {want}", name(p)));
            }
        }
    }
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(env.cluster.client());
    let hook = hooks
        .get("weft-injector")
        .await
        .map_err(|e| e.to_string())?;
    let config = &hook.webhooks.unwrap_or_default()[0].client_config;
    match (&config.service, &config.url) {
        (Some(s), None) if s.name == "weft-injector" && s.namespace == "weft" => Ok(()),
        other => Err(format!(
            "the webhook is not called through its Service: {other:?}"
        )),
    }
}

/// The nat table of `pod`'s network namespace, read through one of its
/// processes (found in its kubepods cgroup).
fn pod_nat_table(pod: &Pod) -> Result<String, String> {
    let uid = pod.metadata.uid.clone().ok_or("pod without uid")?;
    let want = format!("pod{uid}");
    let mut pid = None;
    for root in weft_e2e::node::host::kubepods_cgroups() {
        find_pid(&root, &want, false, &mut pid);
    }
    let pid = pid.ok_or_else(|| format!("no process of pod {uid} in a kubepods cgroup"))?;
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "iptables-nft-save",
            "-t",
            "nat",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn find_pid(dir: &std::path::Path, want: &str, inside: bool, found: &mut Option<u32>) {
    if found.is_some() {
        return;
    }
    let inside = inside || dir.file_name().is_some_and(|n| n == want);
    if inside
        && let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs"))
        && let Some(pid) = text.lines().find_map(|l| l.trim().parse().ok())
    {
        *found = Some(pid);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                find_pid(&e.path(), want, inside, found);
            }
        }
    }
}

async fn rollout_restart_gives_injected_pods_ready_2_of_2(env: &NodeEnv) -> TrialResult {
    let ns = "node-rollout";
    env.namespace(ns, false).await?;
    env.apply(&web_deployment(ns, "web", &[])).await?;
    let before = env.ready_pods(ns, "app=web", 1).await?;
    if ready_column(&before[0]) != (1, 1) {
        return Err(format!(
            "before injection: {}",
            node_support::summary(&before)
        ));
    }
    env.kubectl(&["annotate", "ns", ns, "weft.dev/inject=enabled"])
        .await?;
    env.kubectl(&["rollout", "restart", "deploy/web", "-n", ns])
        .await?;
    env.kubectl(&[
        "rollout",
        "status",
        "deploy/web",
        "-n",
        ns,
        "--timeout=180s",
    ])
    .await?;
    let pods = env.ready_pods(ns, "app=web", 1).await?;
    let pod = &pods[0];
    if ready_column(pod) != (2, 2) {
        return Err(format!(
            "after the restart: {}",
            node_support::summary(&pods)
        ));
    }
    let spec = pod.spec.as_ref().ok_or("no spec")?;
    let inits: Vec<(&str, Option<&str>)> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
        .collect();
    if inits != [("weft-init", None), ("weft-proxy", Some("Always"))] {
        return Err(format!("init containers: {inits:?}"));
    }
    let init_exit = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "weft-init"))
        .and_then(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code));
    if init_exit != Some(0) {
        return Err(format!("weft-init exit code: {init_exit:?}"));
    }
    // The redirect is in the pod's own network namespace...
    let nat = pod_nat_table(pod)?;
    for want in [
        "WEFT_INBOUND",
        "WEFT_OUTBOUND",
        "--to-ports 4143",
        "--to-ports 4140",
    ] {
        if !nat.contains(want) {
            return Err(format!("the pod's nat table lacks {want}:\n{nat}"));
        }
    }
    // ...and it works: a request from the host is served through the
    // inbound proxy, which counts it.
    let ip = pod_ip(pod)?;
    let count = |text: &str| {
        metric(
            text,
            "request_total",
            &[("direction", "inbound"), ("dst_port", "8080")],
        )
    };
    let before = count(&env.proxy_metrics(pod).await?);
    let r = env.get(&ip, 8080, "/index.html").await?;
    if r.status != 200 {
        return Err(format!("GET {ip}:8080: {}", r.status));
    }
    let after = count(&env.proxy_metrics(pod).await?);
    if after < before + 1.0 {
        return Err(format!("inbound requests went from {before} to {after}"));
    }
    Ok(())
}

async fn a_classic_sidecar_pod_reaches_2_of_2(env: &NodeEnv) -> TrialResult {
    let ns = "node-classic";
    env.namespace(ns, true).await?;
    env.apply(&web_deployment(
        ns,
        "classic",
        &[("config.weft.dev/native-sidecar", "false")],
    ))
    .await?;
    let pods = env.ready_pods(ns, "app=classic", 1).await?;
    let pod = &pods[0];
    let spec = pod.spec.as_ref().ok_or("no spec")?;
    let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    if containers != ["weft-proxy", "app"] {
        return Err(format!("containers: {containers:?}"));
    }
    let has_await = spec.containers[0]
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.as_ref())
        .is_some_and(|c| c.iter().any(|a| a == "await"));
    if !has_await {
        return Err("the classic proxy has no `weft-proxy await` postStart hook".to_string());
    }
    match ready_column(pod) {
        (2, 2) => Ok(()),
        other => Err(format!("READY {other:?}")),
    }
}

async fn a_job_completes_in_an_injected_namespace(env: &NodeEnv) -> TrialResult {
    let ns = "node-job";
    env.namespace(ns, true).await?;
    env.apply(&format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: once, namespace: {ns}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: work
          image: {BUSYBOX_IMAGE}
          command: [sh, -c, 'echo working; sleep 1; echo done']
"
    ))
    .await?;
    let jobs: Api<Job> = Api::namespaced(env.cluster.client(), ns);
    eventually("job/once to succeed", Duration::from_secs(180), || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("once").await.map_err(|e| e.to_string())?;
            let status = job.status.unwrap_or_default();
            if status.failed.unwrap_or(0) > 0 {
                return Ok(Err("the job failed".to_string()));
            }
            match status.succeeded.unwrap_or(0) {
                1 => Ok(Ok(())),
                _ => Err(format!("{:?}", status.conditions)),
            }
        }
    })
    .await
    .map_err(|e| e.to_string())??;
    let pods = env.pods(ns, "job-name=once").await?;
    let pod = pods.first().ok_or("the job's pod is gone")?;
    let injected = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == "weft-proxy");
    if !injected {
        return Err("the job's pod was not injected".to_string());
    }
    Ok(())
}

const MESH_NS: &str = "node-mesh";

fn spiffe(ns: &str, sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}

async fn meshed_pods_talk_mtls_with_each_others_identities(env: &NodeEnv) -> TrialResult {
    let ns = MESH_NS;
    env.namespace(ns, true).await?;
    env.apply(&web_deployment(ns, "server", &[])).await?;
    env.apply(&web_deployment(ns, "client", &[])).await?;
    let server = env.ready_pods(ns, "app=server", 1).await?.remove(0);
    let client = env.ready_pods(ns, "app=client", 1).await?.remove(0);
    let server_ip = pod_ip(&server)?;
    let url = format!("http://{server_ip}:8080/index.html");
    for _ in 0..3 {
        let page = env
            .exec(
                ns,
                &name(&client),
                "app",
                &["timeout", "10", "wget", "-qO-", &url],
            )
            .await?;
        if page.trim() != "weft e2e" {
            return Err(format!("{url} answered {page:?}"));
        }
    }
    let server_id = spiffe(ns, "server");
    let client_id = spiffe(ns, "client");
    let out = metric(
        &env.proxy_metrics(&client).await?,
        "response_total",
        &[
            ("direction", "outbound"),
            ("tls", "true"),
            ("server_id", &server_id),
        ],
    );
    let inbound = metric(
        &env.proxy_metrics(&server).await?,
        "response_total",
        &[
            ("direction", "inbound"),
            ("tls", "true"),
            ("client_id", &client_id),
        ],
    );
    if out < 3.0 || inbound < 3.0 {
        return Err(format!(
            "mTLS responses: client's outbound to {server_id}: {out}, server's inbound from {client_id}: {inbound}"
        ));
    }
    Ok(())
}

async fn an_unmeshed_pod_reaches_a_meshed_one_in_plaintext_unless_identity_is_required(
    env: &NodeEnv,
) -> TrialResult {
    let plain = "node-plain";
    env.namespace(plain, false).await?;
    env.apply(&web_deployment(plain, "outsider", &[])).await?;
    env.apply(&node_support::web_deployment_unprobed(
        MESH_NS,
        "guarded",
        &[("config.weft.dev/require-identity", "true")],
    ))
    .await?;
    let outsider = name(&env.ready_pods(plain, "app=outsider", 1).await?[0]);
    let server = env.ready_pods(MESH_NS, "app=server", 1).await?.remove(0);
    let guarded = env.ready_pods(MESH_NS, "app=guarded", 1).await?.remove(0);
    let client = name(&env.ready_pods(MESH_NS, "app=client", 1).await?[0]);

    let server_url = format!("http://{}:8080/index.html", pod_ip(&server)?);
    let page = env
        .exec(
            plain,
            &outsider,
            "app",
            &["timeout", "10", "wget", "-qO-", &server_url],
        )
        .await?;
    if page.trim() != "weft e2e" {
        return Err(format!("plaintext to the meshed server: {page:?}"));
    }
    let plaintext = metric(
        &env.proxy_metrics(&server).await?,
        "response_total",
        &[("direction", "inbound"), ("tls", "false")],
    );
    if plaintext < 1.0 {
        return Err("the server's proxy counted no plaintext request".to_string());
    }

    let guarded_url = format!("http://{}:8080/index.html", pod_ip(&guarded)?);
    if let Ok(page) = env
        .exec(
            plain,
            &outsider,
            "app",
            &["timeout", "10", "wget", "-qO-", &guarded_url],
        )
        .await
    {
        return Err(format!("require-identity served plaintext: {page:?}"));
    }
    let page = env
        .exec(
            MESH_NS,
            &client,
            "app",
            &["timeout", "10", "wget", "-qO-", &guarded_url],
        )
        .await?;
    if page.trim() != "weft e2e" {
        return Err(format!("a meshed client to the guarded pod: {page:?}"));
    }
    Ok(())
}

async fn a_proxy_without_identity_stays_unready_until_identity_returns(
    env: &NodeEnv,
) -> TrialResult {
    let ns = MESH_NS;
    env.kubectl(&["scale", "deploy/weft-control", "-n", "weft", "--replicas=0"])
        .await?;
    eventually(
        "weft-control pods gone",
        Duration::from_secs(60),
        || async {
            let pods = env
                .pods("weft", "weft.dev/control-plane-component=control")
                .await?;
            if pods.is_empty() {
                Ok(())
            } else {
                Err(node_support::summary(&pods))
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    env.apply(&web_deployment(ns, "lonely", &[])).await?;
    let pod = eventually(
        "the lonely pod's proxy to report its failure",
        Duration::from_secs(90),
        || async {
            let pods = env.pods(ns, "app=lonely").await?;
            let pod = pods.into_iter().next().ok_or("no pod yet")?;
            let logs = env
                .kubectl(&["logs", "-n", ns, &name(&pod), "-c", "weft-proxy"])
                .await
                .unwrap_or_default();
            match logs.lines().find(|l| l.contains("certification failed")) {
                Some(line) => Ok((pod, line.to_string())),
                None => Err(format!("proxy log so far: {logs}")),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let (pod, line) = pod;
    if !line.contains("error") {
        return Err(format!("the failure line gives no reason: {line}"));
    }
    let pods = env.pods(ns, "app=lonely").await?;
    if pods.iter().any(node_support::all_ready) {
        return Err(format!(
            "Ready without a certificate: {}",
            node_support::summary(&pods)
        ));
    }
    env.kubectl(&["scale", "deploy/weft-control", "-n", "weft", "--replicas=2"])
        .await?;
    weft_e2e::install::wait_ready(&env.cluster, Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string())?;
    let ready = env.ready_pods(ns, "app=lonely", 1).await?;
    if name(&ready[0]) != name(&pod) {
        return Err(format!(
            "a new pod ({}) replaced {}",
            name(&ready[0]),
            name(&pod)
        ));
    }
    Ok(())
}
