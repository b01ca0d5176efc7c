//! What the mesh adds to a gRPC call inside the cluster, for
//! docs/benchmarks.md ("Mesh latency in the cluster"): emojivoto's voting
//! service deployed twice on the real node, once in a namespace annotated
//! `weft.dev/inject=enabled` and once in a plain one, each called by
//! `emojivoto vote-load` (an open-loop load generator: fixed schedule, one
//! HTTP/2 connection as web uses, latency from each call's scheduled time)
//! from a Job in the same namespace. The meshed path is the one web →
//! voting takes: the caller's outbound proxy, mesh TLS, voting's inbound
//! proxy. Each rate runs plain and meshed back to back, so both see the
//! same machine. Then the meshed voting is scaled to 3 and each endpoint's
//! share of one run is read from its proxy's `response_total`.
//!
//! Run: `cargo bench -p weft-e2e --bench mesh_latency` (or `make
//! bench-mesh`), as root, with no other node running. `WEFT_BENCH_SECONDS`
//! (default 20) is each measured run, `WEFT_BENCH_RATES` (default
//! `100,1000`) the rates, `WEFT_BENCH_ROUNDS` (default 1) how many times
//! each pair runs (later rounds alternate which path goes first). Without
//! `--bench` (`cargo test --benches`) it only checks its manifests.

mod manifests;
mod pods;
mod report;

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use tokio::time::Instant;
use weft_e2e::{Cluster, ClusterOptions, NodeOptions, images, install};

use manifests::{load_job, voting_manifests};
use pods::{
    check_injection, endpoints_ready, finished, mtls_calls, per_endpoint, pod_state, voting_ready,
};
use report::{LoadReport, Row, parse_report, print_latency, print_spread};

/// The load generator's container, ServiceAccount and Job prefix.
const LOAD: &str = "vote-load";
/// The warm-up before each latency run: the connection (and for the mesh,
/// the proxies' endpoints and mesh TLS session) made before the clock runs.
const WARMUP: Duration = Duration::from_secs(2);
/// How long the load generator retries its first call.
const READY_TIMEOUT_S: u64 = 60;
/// How long a Job pod may take to be scheduled and start.
const POD_START: Duration = Duration::from_secs(120);

/// The two ways to voting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Plain pods: the load generator's connection goes through the
    /// ClusterIP (kube-proxy) straight to voting.
    Plain,
    /// Injected pods: through both proxies, over mesh TLS.
    Mesh,
}

impl Path {
    fn namespace(self) -> &'static str {
        match self {
            Path::Plain => "bench-plain",
            Path::Mesh => "bench-mesh",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain",
            Path::Mesh => "mesh",
        }
    }

    fn injected(self) -> bool {
        self == Path::Mesh
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // Without `--bench` (`cargo test --benches`): check the pure parts.
        manifests::check()?;
        report::check()?;
        println!("mesh_latency: run with `cargo bench -p weft-e2e --bench mesh_latency`");
        return Ok(());
    }
    let seconds: u64 = env_or("WEFT_BENCH_SECONDS", 20)?;
    let rounds: usize = env_or("WEFT_BENCH_ROUNDS", 1)?;
    let rates: Vec<u32> = std::env::var("WEFT_BENCH_RATES")
        .unwrap_or_else(|_| "100,1000".to_string())
        .split(',')
        .map(|r| r.trim().parse())
        .collect::<Result<_, _>>()
        .context("WEFT_BENCH_RATES: whole requests per second, comma-separated")?;
    anyhow::ensure!(
        seconds > 0 && rounds > 0 && !rates.is_empty() && !rates.contains(&0),
        "need a run of at least 1 s, a round, and rates above 0"
    );
    let started = Instant::now();

    let cluster = Cluster::start_with(ClusterOptions {
        start_timeout: Duration::from_secs(300),
        node: Some(NodeOptions {
            images: images::ensure().await?,
        }),
        ..ClusterOptions::default()
    })
    .await?;
    install::apply(&cluster, &[]).await?;
    install::wait_ready(&cluster, Duration::from_secs(300)).await?;
    weft_e2e::webhook::wait_live(&cluster).await?;

    for path in [Path::Plain, Path::Mesh] {
        cluster
            .kubectl()
            .run_stdin(&["apply", "-f", "-"], &voting_manifests(path, 1)?)
            .await?;
    }
    for path in [Path::Plain, Path::Mesh] {
        let pods = voting_ready(&cluster, path, 1).await?;
        check_injection(&pods[0], path)?;
    }

    let mut rows = Vec::new();
    for round in 1..=rounds {
        for &rate in &rates {
            // Alternate which path runs first, so neither always gets the
            // warmer (or the busier) machine.
            let order = if round % 2 == 1 {
                [Path::Plain, Path::Mesh]
            } else {
                [Path::Mesh, Path::Plain]
            };
            for path in order {
                let job = format!("{LOAD}-{rate}-r{round}");
                let voting = voting_ready(&cluster, path, 1).await?;
                let before = mtls_calls(path, &voting).await?;
                let report = run_load(&cluster, path, &job, rate, seconds, WARMUP).await?;
                let after = mtls_calls(path, &voting).await?;
                eprintln!(
                    "mesh_latency: {rate} req/s {}: {} of {} ok, p50 {} µs",
                    path.name(),
                    report.succeeded,
                    report.sent,
                    report.latency_us.map_or(0, |l| l.p50)
                );
                rows.push(Row {
                    round,
                    rate,
                    path,
                    report,
                    mtls: before.zip(after).map(|(b, a)| a - b),
                });
            }
        }
    }
    print_latency(&rows, seconds);

    // The spread: three endpoints behind the meshed voting-svc, one run at
    // 100 req/s, each endpoint's inbound responses before and after.
    cluster
        .kubectl()
        .run_stdin(&["apply", "-f", "-"], &voting_manifests(Path::Mesh, 3)?)
        .await?;
    let voting = voting_ready(&cluster, Path::Mesh, 3).await?;
    for pod in &voting {
        check_injection(pod, Path::Mesh)?;
    }
    endpoints_ready(&cluster, Path::Mesh, 3).await?;
    let before = per_endpoint(&voting).await?;
    let report = run_load(
        &cluster,
        Path::Mesh,
        &format!("{LOAD}-spread"),
        100,
        seconds,
        Duration::ZERO,
    )
    .await?;
    let after = per_endpoint(&voting).await?;
    print_spread(&voting, &before, &after, &report, seconds);

    eprintln!(
        "mesh_latency: done in {:.0} s (cluster, install and every run)",
        started.elapsed().as_secs_f64()
    );
    let problems = cluster.stop_checked();
    anyhow::ensure!(problems.is_empty(), "teardown: {}", problems.join("; "));
    Ok(())
}

/// Runs one load Job to its end and returns its report; the Job is deleted.
async fn run_load(
    cluster: &Cluster,
    path: Path,
    job: &str,
    rate: u32,
    seconds: u64,
    warmup: Duration,
) -> anyhow::Result<LoadReport> {
    let ns = path.namespace();
    let kubectl = cluster.kubectl();
    kubectl
        .run_stdin(
            &["apply", "-f", "-"],
            &load_job(path, job, rate, seconds, warmup)?,
        )
        .await?;
    // Not a poll during the run: the API server shares the two cores.
    tokio::time::sleep(Duration::from_secs(seconds) + warmup).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let selector = format!("job-name={job}");
    let deadline = Instant::now() + POD_START + Duration::from_secs(READY_TIMEOUT_S + 30);
    let (pod, exit_code) = loop {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        if let Some(done) = list
            .items
            .iter()
            .find_map(|p| finished(p).map(|c| (p.clone(), c)))
        {
            break done;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{ns}/{job} did not finish: {}",
            list.items
                .iter()
                .map(pod_state)
                .collect::<Vec<_>>()
                .join("; ")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    check_injection(&pod, path)?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let logs = kubectl
        .run(&["logs", "-n", ns, &pod_name, "-c", LOAD])
        .await?
        .stdout;
    kubectl
        .run(&["delete", "job", "-n", ns, job, "--wait=false"])
        .await?;
    let report = parse_report(&logs).with_context(|| {
        format!("{ns}/{pod_name} (exit {exit_code}) printed no report:\n{logs}")
    })?;
    anyhow::ensure!(
        report.succeeded > 0,
        "{ns}/{job}: no call succeeded ({:?}):\n{logs}",
        report.first_error
    );
    Ok(report)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}
