//! Webhook latency as the API server sees it: a few hundred pod creations
//! through the real `weft-injector` (release build) on a local cluster, read
//! from the API server's `apiserver_admission_webhook_admission_duration_seconds`
//! and the injector's `weft_injector_admission_review_duration_seconds`,
//! next to the client-side creation latency with and without the webhook.
//!
//! Run: `cargo bench -p weft-e2e --bench webhook_latency` (or `make bench-e2e`).
//! `WEFT_BENCH_PODS` (default 300) and `WEFT_BENCH_CONCURRENCY` (default 4)
//! change the load. It prints a Markdown table for docs/benchmarks.md.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::time::Instant;
use weft_e2e::prom::Histogram;
use weft_e2e::webhook::{self, FailurePolicy};
use weft_e2e::{Cluster, Injector, Profile};

const APISERVER_METRIC: &str = "apiserver_admission_webhook_admission_duration_seconds";
const INJECTOR_METRIC: &str = "weft_injector_admission_review_duration_seconds";
const WEBHOOK_LABELS: &[(&str, &str)] = &[
    ("name", "inject.weft.dev"),
    ("operation", "CREATE"),
    ("type", "admit"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass test
    // filters: this benchmark only runs when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!("webhook_latency: run with `cargo bench -p weft-e2e --bench webhook_latency`");
        return Ok(());
    }
    let pods: usize = env_or("WEFT_BENCH_PODS", 300)?;
    let concurrency: usize = env_or("WEFT_BENCH_CONCURRENCY", 4)?;
    anyhow::ensure!(
        pods > 0 && concurrency > 0,
        "need at least one pod and one client"
    );

    let started = Instant::now();
    let cluster = Cluster::start().await?;
    let cluster_up = started.elapsed();
    let injector = Injector::start_with(&cluster, Profile::Release, &[]).await?;
    webhook::install(&cluster, &injector, FailurePolicy::Ignore).await?;
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("bench".into()),
                    annotations: Some(BTreeMap::from([(
                        "weft.dev/inject".into(),
                        "enabled".into(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await?;

    // Warm the API server's connection to the webhook and its caches.
    create_pods(&client, "bench", "warm", 20, concurrency).await?;

    let apiserver_before = apiserver_histogram(&client).await?;
    let injector_before = injector_histogram(&injector).await?;
    let run = Instant::now();
    let mut meshed = create_pods(&client, "bench", "p", pods, concurrency).await?;
    let run_time = run.elapsed();
    let apiserver = apiserver_histogram(&client).await?.since(&apiserver_before);
    let injector_hist = injector_histogram(&injector).await?.since(&injector_before);

    // The same creations where the webhook is never called (kube-system is
    // outside its namespaceSelector): what the webhook adds end to end.
    create_pods(&client, "kube-system", "warm", 20, concurrency).await?;
    let mut baseline = create_pods(&client, "kube-system", "p", pods, concurrency).await?;

    anyhow::ensure!(
        apiserver.count as usize >= pods,
        "the API server recorded {} webhook calls for {pods} pods",
        apiserver.count
    );
    println!(
        "webhook_latency: {pods} pods, {concurrency} concurrent clients, {:.1} pods/s; cluster start {:.1}s",
        pods as f64 / run_time.as_secs_f64(),
        cluster_up.as_secs_f64()
    );
    println!();
    println!("| measured by | calls | mean | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    row(
        "API server: `apiserver_admission_webhook_admission_duration_seconds`",
        &apiserver,
    );
    row(
        "injector: `weft_injector_admission_review_duration_seconds`",
        &injector_hist,
    );
    exact("client: pod create, webhook injecting", &mut meshed);
    exact(
        "client: pod create, no webhook (kube-system)",
        &mut baseline,
    );
    Ok(())
}

async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let names: Vec<String> = (worker..count)
            .step_by(concurrency)
            .map(|i| format!("{prefix}-{i}"))
            .collect();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(names.len());
            for name in names {
                let pod = pod(&name);
                let t = Instant::now();
                api.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = workers.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.invalid/app:1".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

async fn apiserver_histogram(client: &kube::Client) -> anyhow::Result<Histogram> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Histogram::parse(&text, APISERVER_METRIC, WEBHOOK_LABELS)
        .with_context(|| format!("{APISERVER_METRIC} for inject.weft.dev not exported"))
}

async fn injector_histogram(injector: &Injector) -> anyhow::Result<Histogram> {
    Histogram::parse(&injector.metrics().await?, INJECTOR_METRIC, &[])
        .with_context(|| format!("{INJECTOR_METRIC} not exported"))
}

fn row(what: &str, h: &Histogram) {
    let q = |q: f64| match h.quantile(q) {
        Some((estimate, bound)) if bound.is_finite() => {
            format!("{} (bucket ≤ {})", ms(estimate), ms(bound))
        }
        Some((lower, _)) => format!("> {}", ms(lower)),
        None => "-".into(),
    };
    println!(
        "| {what} | {} | {} | {} | {} |",
        h.count,
        h.mean().map_or("-".into(), ms),
        q(0.5),
        q(0.99)
    );
}

fn exact(what: &str, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[i].as_secs_f64())
    };
    let mean = latencies.iter().sum::<Duration>().as_secs_f64() / latencies.len() as f64;
    println!(
        "| {what} | {} | {} | {} | {} |",
        latencies.len(),
        ms(mean),
        at(0.5),
        at(0.99)
    );
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

fn env_or(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}
