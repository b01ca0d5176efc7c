//! The node's figures for docs/benchmarks.md: how long a node cluster takes
//! to reach node Ready (binaries and images already built), how long weft's
//! control plane takes to become Available after `weft install | kubectl
//! apply`, how long `kubectl rollout restart` of emojivoto's four
//! Deployments takes until every pod is READY 2/2, the size of each image,
//! and each weft container's memory from the kubelet's summary API.
//!
//! Run: `cargo bench -p weft-e2e --bench node_figures` (or `make
//! bench-node`), as root, with no other node running. `WEFT_BENCH_ROUNDS`
//! (default 3) sets how many restarts are timed.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use tokio::time::Instant;
use weft_e2e::{Cluster, ClusterOptions, NodeOptions, bins, images, install, wait};

const NS: &str = "emojivoto";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("node_figures: run with `cargo bench -p weft-e2e --bench node_figures`");
        return Ok(());
    }
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("WEFT_BENCH_ROUNDS")?
        .unwrap_or(3);

    let built = images::build().await?;
    let started = Instant::now();
    let cluster = Cluster::start_with(ClusterOptions {
        start_timeout: Duration::from_secs(300),
        node: Some(NodeOptions {
            images: built.iter().map(|i| i.archive.clone()).collect(),
        }),
        ..ClusterOptions::default()
    })
    .await?;
    let up = started.elapsed();

    let started = Instant::now();
    install::apply(&cluster, &[]).await?;
    install::wait_ready(&cluster, Duration::from_secs(300)).await?;
    let control_plane = started.elapsed();

    let manifest = bins::workspace_root().join("examples/emojivoto.yml");
    let kubectl = cluster.kubectl();
    kubectl
        .run(&["apply", "-f", &manifest.display().to_string()])
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), NS);
    let names = install::deployment_names(&deployments).await?;
    all_complete(&deployments, &names).await?;
    kubectl
        .run(&[
            "annotate",
            "--overwrite",
            "ns",
            NS,
            "weft.dev/inject=enabled",
        ])
        .await?;
    weft_e2e::webhook::wait_live(&cluster).await?;

    let mut restarts = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        kubectl
            .run(&["rollout", "restart", "deploy", "-n", NS])
            .await?;
        // The restart stamp changes every template: wait until each
        // Deployment has rolled out its new generation.
        tokio::time::sleep(Duration::from_millis(200)).await;
        all_complete(&deployments, &names).await?;
        restarts.push(started.elapsed());
    }

    println!(
        "## Node figures ({} Deployments, {rounds} restarts)\n",
        names.len()
    );
    println!("| what | figure |");
    println!("| --- | ---: |");
    println!(
        "| node cluster start to node Ready, kube-proxy healthy, CoreDNS Available (images imported) | {:.1} s |",
        up.as_secs_f64()
    );
    println!(
        "| `weft install \\| kubectl apply` to injector and control Available | {:.1} s |",
        control_plane.as_secs_f64()
    );
    for (i, r) in restarts.iter().enumerate() {
        println!(
            "| `kubectl rollout restart deploy -n {NS}` to every pod 2/2 Ready, round {} | {:.1} s |",
            i + 1,
            r.as_secs_f64()
        );
    }
    println!("\n| image | compressed |");
    println!("| --- | ---: |");
    for i in &built {
        println!(
            "| `{}` | {:.2} MB |",
            i.name,
            i.compressed_size as f64 / 1e6
        );
    }

    // The kubelet's summary API, through the API server's node proxy.
    let summary = kubectl
        .run(&[
            "get",
            "--raw",
            &format!(
                "/api/v1/nodes/{}/proxy/stats/summary",
                weft_e2e::node::config::NODE_NAME
            ),
        ])
        .await?
        .stdout;
    let summary: Value = serde_json::from_str(&summary).context("the summary API's JSON")?;
    println!("\n| pod | container | working set | RSS |");
    println!("| --- | --- | ---: | ---: |");
    for pod in summary["pods"].as_array().into_iter().flatten() {
        let ns = pod["podRef"]["namespace"].as_str().unwrap_or_default();
        if ns != NS && ns != install::NAMESPACE {
            continue;
        }
        let pod_name = pod["podRef"]["name"].as_str().unwrap_or_default();
        for c in pod["containers"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            let mib = |v: &Value| {
                v.as_f64()
                    .map_or("-".to_string(), |b| format!("{:.1} MiB", b / 1048576.0))
            };
            println!(
                "| {ns}/{pod_name} | {name} | {} | {} |",
                mib(&c["memory"]["workingSetBytes"]),
                mib(&c["memory"]["rssBytes"])
            );
        }
    }
    let problems = cluster.stop_checked();
    anyhow::ensure!(problems.is_empty(), "teardown: {}", problems.join("; "));
    Ok(())
}

async fn all_complete(deployments: &Api<Deployment>, names: &[String]) -> anyhow::Result<()> {
    wait::eventually(
        "every Deployment rolled out",
        Duration::from_secs(300),
        || async move {
            for name in names {
                install::deployment_complete(deployments, name).await?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(())
}
