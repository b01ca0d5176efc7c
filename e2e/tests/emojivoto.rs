//! The emojivoto suite: the demo app on a real node, injected, with its
//! Service traffic through the mesh. One node cluster with weft installed
//! by `weft install | kubectl apply -f -`, `examples/emojivoto.yml`
//! applied, its namespace annotated and its Deployments restarted; the
//! trials run one after another against it (some scale or stop parts of
//! it) and the cluster is torn down at the end.
//!
//! Votes are cast from the host at web's pod IP (on the node's bridge);
//! web calls voting through `voting-svc`'s ClusterIP, so each vote crosses
//! web's outbound proxy (balancing over voting's endpoints) and a voting
//! proxy's inbound, over mesh TLS.
//!
//! Needs root. Run alone with `cargo test -p weft-e2e --test emojivoto`.

mod node_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use node_support::{NodeEnv, TrialResult, name, pod_ip};
use tokio::time::Instant;
use weft_e2e::bins;
use weft_e2e::images::BUSYBOX_IMAGE;
use weft_e2e::metrics::metric;
use weft_e2e::wait::eventually;

const NS: &str = "emojivoto";
const VOTING: &str = "app=voting-svc";
const WEB: &str = "app=web-svc";
const BOT: &str = "app=vote-bot";
const DEPLOYMENTS: [&str; 4] = ["emoji", "voting", "web", "vote-bot"];

fn main() {
    // In this order: the later trials build on the earlier ones' state.
    let all = trials![
        voting_serves_grpc_within_60s_and_only_vote_doughnut_fails,
        web_reaches_voting_svc_over_mtls_with_the_service_and_workload_labels,
        scaled_from_one_to_three_the_new_endpoints_get_traffic_within_seconds,
        killing_an_endpoint_fails_only_requests_in_flight_on_it,
        with_destination_gone_traffic_keeps_flowing_to_the_known_endpoints,
    ];
    node_support::suite::run(
        "emojivoto",
        all,
        Some(|env| Box::pin(deploy_emojivoto(env))),
    );
}

/// The tutorial's steps 2 to 5: apply, annotate, restart, every pod 2/2.
async fn deploy_emojivoto(env: &NodeEnv) -> TrialResult {
    let manifest = bins::workspace_root()
        .join("examples")
        .join("emojivoto.yml");
    env.kubectl(&["apply", "-f", &manifest.display().to_string()])
        .await?;
    env.kubectl(&[
        "annotate",
        "ns",
        NS,
        "weft.dev/inject=enabled",
        "--overwrite",
    ])
    .await?;
    // As a person would check before restarting: the injector's namespace
    // watch has seen the annotation once a dry-run pod comes back injected.
    let probe = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: injection-probe, namespace: {NS}}}\n\
         spec: {{containers: [{{name: app, image: {BUSYBOX_IMAGE}}}]}}\n"
    );
    eventually(
        "the injector to see the annotation",
        Duration::from_secs(60),
        || async {
            let out = env
                .cluster
                .kubectl()
                .run_stdin(
                    &["create", "--dry-run=server", "-o", "json", "-f", "-"],
                    &probe,
                )
                .await
                .map_err(|e| e.to_string())?;
            if out.stdout.contains("\"weft-proxy\"") {
                Ok(())
            } else {
                Err("a dry-run pod is not injected yet".to_string())
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    env.kubectl(&["rollout", "restart", "deploy", "-n", NS])
        .await?;
    for deployment in DEPLOYMENTS {
        env.kubectl(&[
            "rollout",
            "status",
            "-n",
            NS,
            &format!("deploy/{deployment}"),
            "--timeout=240s",
        ])
        .await?;
    }
    for selector in [VOTING, WEB, BOT, "app=emoji-svc"] {
        let pods = env.ready_pods(NS, selector, 1).await?;
        let (ready, total) = node_support::ready_column(&pods[0]);
        if (ready, total) != (2, 2) {
            return Err(format!("{}: READY {ready}/{total}", name(&pods[0])));
        }
    }
    Ok(())
}

fn spiffe(sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{NS}/sa/{sa}")
}

/// The voting proxies' inbound responses from web over mesh TLS, with
/// `more` labels, summed over `pods`.
async fn voting_inbound(env: &NodeEnv, pods: &[Pod], more: &[(&str, &str)]) -> Result<f64, String> {
    let web = spiffe("web");
    let mut labels = vec![
        ("direction", "inbound"),
        ("tls", "true"),
        ("client_id", web.as_str()),
    ];
    labels.extend_from_slice(more);
    let mut sum = 0.0;
    for pod in pods {
        sum += metric(&env.proxy_metrics(pod).await?, "response_total", &labels);
    }
    Ok(sum)
}

/// Requests each voting pod's proxy took in from web.
async fn spread(env: &NodeEnv, pods: &[Pod]) -> Result<Vec<f64>, String> {
    let mut counts = Vec::new();
    for pod in pods {
        counts.push(voting_inbound(env, std::slice::from_ref(pod), &[]).await?);
    }
    Ok(counts)
}

/// Casts one vote through web; its HTTP status.
async fn vote(env: &NodeEnv, web_ip: &str, choice: &str) -> Result<u16, String> {
    let path = format!("/api/vote?choice={choice}");
    Ok(env.get(web_ip, 8080, &path).await?.status)
}

async fn web_ip(env: &NodeEnv) -> Result<String, String> {
    pod_ip(&env.ready_pods(NS, WEB, 1).await?[0])
}

async fn scale(env: &NodeEnv, ns: &str, deployment: &str, replicas: u32) -> TrialResult {
    env.kubectl(&[
        "scale",
        "-n",
        ns,
        &format!("deploy/{deployment}"),
        &format!("--replicas={replicas}"),
    ])
    .await
    .map(|_| ())
}

async fn voting_serves_grpc_within_60s_and_only_vote_doughnut_fails(env: &NodeEnv) -> TrialResult {
    let voting = env.ready_pods(NS, VOTING, 1).await?;
    // The vote-bot's own traffic: gRPC answers, some of them VoteDoughnut's
    // failure, within a minute of the pods being ready.
    eventually(
        "voting's proxy to show gRPC successes and failures",
        Duration::from_secs(60),
        || async {
            let ok = voting_inbound(env, &voting, &[("grpc_status", "0")]).await?;
            let failed = voting_inbound(env, &voting, &[("classification", "failure")]).await?;
            if ok > 0.0 && failed > 0.0 {
                Ok(())
            } else {
                Err(format!("{ok} OK, {failed} failed"))
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;

    // Then exactly counted: the bot stopped, 10 doughnut votes and 20
    // others; only the doughnut ones fail, as UNKNOWN (2).
    scale(env, NS, "vote-bot", 0).await?;
    eventually("the vote-bot to stop", Duration::from_secs(60), || async {
        match env.pods(NS, BOT).await?.len() {
            0 => Ok(()),
            n => Err(format!("{n} pods")),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let web_ip = web_ip(env).await?;
    let failed_before = voting_inbound(env, &voting, &[("classification", "failure")]).await?;
    let unknown_before = voting_inbound(env, &voting, &[("grpc_status", "2")]).await?;
    let ok_before = voting_inbound(env, &voting, &[("grpc_status", "0")]).await?;
    for _ in 0..10 {
        let status = vote(env, &web_ip, ":doughnut:").await?;
        if status != 500 {
            return Err(format!("a doughnut vote answered {status}, not 500"));
        }
    }
    for _ in 0..20 {
        let status = vote(env, &web_ip, ":joy:").await?;
        if status != 200 {
            return Err(format!("a joy vote answered {status}"));
        }
    }
    eventually(
        "the 30 votes in voting's metrics",
        Duration::from_secs(10),
        || async {
            let failed = voting_inbound(env, &voting, &[("classification", "failure")]).await?
                - failed_before;
            let unknown =
                voting_inbound(env, &voting, &[("grpc_status", "2")]).await? - unknown_before;
            let ok = voting_inbound(env, &voting, &[("grpc_status", "0")]).await? - ok_before;
            if (failed, unknown, ok) == (10.0, 10.0, 20.0) {
                Ok(())
            } else {
                Err(format!(
                    "{failed} failed, {unknown} UNKNOWN, {ok} OK (want 10, 10, 20)"
                ))
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    scale(env, NS, "vote-bot", 1).await
}

async fn web_reaches_voting_svc_over_mtls_with_the_service_and_workload_labels(
    env: &NodeEnv,
) -> TrialResult {
    let web = env.ready_pods(NS, WEB, 1).await?;
    let voting = spiffe("voting");
    let labels = [
        ("direction", "outbound"),
        ("tls", "true"),
        ("server_id", voting.as_str()),
        ("dst_service", "voting-svc"),
        ("dst_namespace", NS),
        ("dst_deployment", "voting"),
    ];
    let web_ip = pod_ip(&web[0])?;
    vote(env, &web_ip, ":joy:").await?;
    let text = env.proxy_metrics(&web[0]).await?;
    let seen = metric(&text, "response_total", &labels);
    if seen < 1.0 {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("response_total") && l.contains("outbound"))
            .collect();
        return Err(format!(
            "no outbound mTLS response to voting-svc; web's outbound series:\n{}",
            lines.join("\n")
        ));
    }
    Ok(())
}

async fn scaled_from_one_to_three_the_new_endpoints_get_traffic_within_seconds(
    env: &NodeEnv,
) -> TrialResult {
    scale(env, NS, "voting", 3).await?;
    let voting = env.ready_pods(NS, VOTING, 3).await?;
    let ready_at = Instant::now();
    let web_ip = web_ip(env).await?;
    let mut first_seen: Vec<Option<Duration>> = vec![None; voting.len()];
    let baseline = spread(env, &voting).await?;
    while first_seen.iter().any(Option::is_none) {
        if ready_at.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "not every endpoint got traffic within 30 s of Ready: {:?}",
                spread(env, &voting).await?
            ));
        }
        for _ in 0..10 {
            vote(env, &web_ip, ":joy:").await?;
        }
        let now = spread(env, &voting).await?;
        for (i, (n, was)) in now.iter().zip(&baseline).enumerate() {
            if n > was && first_seen[i].is_none() {
                first_seen[i] = Some(ready_at.elapsed());
            }
        }
    }
    eprintln!(
        "voting scaled to 3: each endpoint's first request after {:?} (from all Ready)",
        first_seen.iter().flatten().collect::<Vec<_>>()
    );
    Ok(())
}

async fn killing_an_endpoint_fails_only_requests_in_flight_on_it(env: &NodeEnv) -> TrialResult {
    let voting = env.ready_pods(NS, VOTING, 3).await?;
    let web_ip = web_ip(env).await?;
    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four votes in flight at all times: at most four can be on the
    // killed pod when it goes.
    const WORKERS: usize = 4;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (failed, sent, stop, ip) = (failed.clone(), sent.clone(), stop.clone(), web_ip.clone());
        workers.push(tokio::spawn(async move {
            let addr = std::net::SocketAddr::new(ip.parse().expect("a pod IP"), 8080);
            while !stop.load(Ordering::Relaxed) {
                let r = weft_e2e::http::get_from(
                    addr,
                    "/api/vote?choice=:joy:",
                    Duration::from_secs(10),
                )
                .await;
                sent.fetch_add(1, Ordering::Relaxed);
                if !matches!(r, Ok(ref r) if r.status == 200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = name(&voting[0]);
    env.kubectl(&["delete", "pod", "-n", NS, &victim, "--wait=false"])
        .await?;
    let deleted_at = Instant::now();
    // The replacement comes up while the votes keep going.
    env.ready_pods(NS, VOTING, 3).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let (failed, sent) = (failed.load(Ordering::Relaxed), sent.load(Ordering::Relaxed));
    eprintln!(
        "killed {victim}: {failed} of {sent} votes failed while it went ({:?} from delete to 3 Ready again, then 5 s)",
        deleted_at.elapsed()
    );
    if failed > WORKERS {
        return Err(format!(
            "{failed} of {sent} votes failed: more than the {WORKERS} that can be in flight on one pod"
        ));
    }
    Ok(())
}

async fn with_destination_gone_traffic_keeps_flowing_to_the_known_endpoints(
    env: &NodeEnv,
) -> TrialResult {
    let voting = env.ready_pods(NS, VOTING, 3).await?;
    let web_ip = web_ip(env).await?;
    scale(env, "weft", "weft-control", 0).await?;
    eventually(
        "weft-control's pods to be gone",
        Duration::from_secs(90),
        || async {
            match env
                .pods("weft", "app.kubernetes.io/name=weft-control")
                .await?
                .len()
            {
                0 => Ok(()),
                n => Err(format!("{n} pods")),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let before = voting_inbound(env, &voting, &[]).await?;
    let mut result = Ok(());
    for i in 0..50 {
        let status = vote(env, &web_ip, ":joy:").await?;
        if status != 200 {
            result = Err(format!("vote {i} answered {status} with destination down"));
            break;
        }
    }
    let mtls = voting_inbound(env, &voting, &[]).await? - before;
    scale(env, "weft", "weft-control", 1).await?;
    result?;
    if mtls < 50.0 {
        return Err(format!("only {mtls} of 50 votes reached voting over mTLS"));
    }
    env.ready_pods("weft", "app.kubernetes.io/name=weft-control", 1)
        .await
        .map(|_| ())
}
