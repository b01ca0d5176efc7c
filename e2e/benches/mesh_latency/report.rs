//! The load generator's report, and the tables the benchmark prints.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::{Path, WARMUP};

/// The line `emojivoto vote-load` prints (the fields read here).
#[derive(Debug, Clone, Deserialize)]
pub struct LoadReport {
    pub warmup_calls: u64,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub achieved_rps: f64,
    pub latency_us: Option<Latency>,
    pub first_error: Option<String>,
}

/// Latency percentiles of the successful calls, in microseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// One latency run.
pub struct Row {
    pub round: usize,
    pub rate: u32,
    pub path: Path,
    pub report: LoadReport,
    /// Calls voting's proxies took in over mesh TLS from vote-load during
    /// the run, warm-up included (meshed runs only).
    pub mtls: Option<f64>,
}

/// The last line of `logs` that is a report (stderr's log lines are in
/// the container's log too).
pub fn parse_report(logs: &str) -> Option<LoadReport> {
    logs.lines()
        .rev()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
}

/// The latency table: a row per run, the meshed rows with what the mesh
/// added over the plain run of the same rate and round; then, per meshed
/// run, how many calls voting's proxy took over mesh TLS.
pub fn print_latency(rows: &[Row], seconds: u64) {
    println!(
        "## Mesh latency: vote-load → voting-svc, {seconds} s per run, after {} s of warm-up (µs; added = mesh minus plain)\n",
        WARMUP.as_secs()
    );
    println!(
        "| rate (req/s) | path | round | p50 | p90 | p99 | p99.9 | max | achieved req/s | ok / sent | added p50 | added p99 |"
    );
    println!(
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let r = &row.report;
        let cell = |f: fn(&Latency) -> u64| {
            r.latency_us
                .as_ref()
                .map_or("–".to_string(), |l| f(l).to_string())
        };
        let plain = rows
            .iter()
            .find(|p| p.path == Path::Plain && p.rate == row.rate && p.round == row.round)
            .and_then(|p| p.report.latency_us);
        let added = |f: fn(&Latency) -> u64| match (row.path, r.latency_us, plain) {
            (Path::Mesh, Some(m), Some(p)) => format!("{:+}", f(&m) as i64 - f(&p) as i64),
            _ => "–".to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} / {} | {} | {} |",
            row.rate,
            row.path.name(),
            row.round,
            cell(|l| l.p50),
            cell(|l| l.p90),
            cell(|l| l.p99),
            cell(|l| l.p999),
            cell(|l| l.max),
            r.achieved_rps,
            r.succeeded,
            r.sent,
            added(|l| l.p50),
            added(|l| l.p99),
        );
    }
    println!();
    for row in rows.iter().filter(|r| r.path == Path::Mesh) {
        let made = row.report.sent + row.report.warmup_calls;
        println!(
            "- {} req/s, round {}: voting's proxy took {} of vote-load's {made} calls (warm-up included) over mesh TLS; {} failed{}",
            row.rate,
            row.round,
            row.mtls.unwrap_or_default(),
            row.report.failed,
            row.report
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
        );
    }
    println!();
}

/// The spread table: each endpoint's share of one run's calls, from its
/// proxy's counters before and after.
pub fn print_spread(
    pods: &[Pod],
    before: &[(f64, f64)],
    after: &[(f64, f64)],
    report: &LoadReport,
    seconds: u64,
) {
    println!(
        "## Spread over {} voting endpoints: 100 req/s for {seconds} s on one HTTP/2 connection\n",
        pods.len()
    );
    println!("| endpoint (pod) | calls from vote-load (mTLS) | share | all inbound responses |");
    println!("| --- | ---: | ---: | ---: |");
    let deltas: Vec<(f64, f64)> = before
        .iter()
        .zip(after)
        .map(|((lb, ab), (la, aa))| (la - lb, aa - ab))
        .collect();
    let total: f64 = deltas.iter().map(|(l, _)| l).sum();
    for (pod, (load, all)) in pods.iter().zip(&deltas) {
        let share = if total > 0.0 {
            100.0 * load / total
        } else {
            0.0
        };
        println!(
            "| {} | {load} | {share:.1} % | {all} |",
            pod.metadata.name.as_deref().unwrap_or_default()
        );
    }
    let latency = report
        .latency_us
        .map(|l| format!("p50 {} µs, p99 {} µs", l.p50, l.p99))
        .unwrap_or_else(|| "no latency".to_string());
    println!(
        "\nvote-load made {} calls ({} measured, {} ok, plus {} before the run); the proxies counted {total}. {latency}; {:.1} req/s achieved.\n",
        report.sent + report.warmup_calls,
        report.sent,
        report.succeeded,
        report.warmup_calls,
        report.achieved_rps,
    );
}

/// A report line is found among the container's log lines and parses.
pub fn check() -> anyhow::Result<()> {
    let line = r#"{"target":"voting-svc.bench-mesh:8080","method":"VoteJoy","rate":100.0,"duration_s":20.0,"concurrency":100,"warmup_calls":201,"sent":2000,"succeeded":2000,"failed":0,"achieved_rps":99.98,"latency_us":{"p50":310,"p90":402,"p99":780,"p999":1900,"max":4100},"first_error":null}"#;
    let logs = format!("2026-12-04T10:00:00Z  INFO weft_emojivoto::vote_load: starting\n{line}\n");
    let report = parse_report(&logs).context("the sample report")?;
    anyhow::ensure!(report.sent == 2000 && report.latency_us.is_some_and(|l| l.p99 == 780));
    Ok(())
}
