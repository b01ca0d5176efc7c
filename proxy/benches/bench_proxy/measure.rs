//! One measured run: a path under load at a fixed rate (open loop) or at
//! saturation (closed loop), with its proxies' memory and CPU read from
//! /proc; and the medians of several such runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Options;
use super::load::{self, LoadResult, Proto};
use super::peers;
use super::stats::{self, Summary};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The figures of every (protocol, load, path); a load is a rate, or
/// saturation (`None`).
pub type Rows = std::collections::HashMap<(Proto, Option<u32>, super::paths::Path), Row>;

/// One measured run, or the medians of several.
#[derive(Clone)]
pub struct Row {
    pub latency: Summary,
    pub requests: usize,
    pub errors: usize,
    pub rps: f64,
    /// Per proxy: CPU seconds per 1,000 requests.
    pub cpu_per_1k: Option<f64>,
    /// Per proxy: cores busy on average during the run.
    pub cores: Option<f64>,
    /// Per proxy: RSS before the run (KiB).
    pub rss_idle: Option<u64>,
    /// Per proxy: peak RSS during the run (KiB).
    pub rss_peak: Option<u64>,
}

impl Row {
    /// Medians of `runs` (peak RSS: the highest; counts: the sums).
    pub fn combine(runs: &[Row]) -> Option<Row> {
        let first = runs.first()?;
        let lat = |f: fn(&Summary) -> f64| median(runs.iter().map(|r| f(&r.latency)));
        Some(Row {
            latency: Summary {
                p50: lat(|s| s.p50),
                p90: lat(|s| s.p90),
                p99: lat(|s| s.p99),
                max: lat(|s| s.max),
            },
            requests: runs.iter().map(|r| r.requests).sum(),
            errors: runs.iter().map(|r| r.errors).sum(),
            rps: median(runs.iter().map(|r| r.rps)),
            cpu_per_1k: first
                .cpu_per_1k
                .map(|_| median(runs.iter().filter_map(|r| r.cpu_per_1k))),
            cores: first
                .cores
                .map(|_| median(runs.iter().filter_map(|r| r.cores))),
            rss_idle: first
                .rss_idle
                .map(|_| median(runs.iter().filter_map(|r| r.rss_idle).map(|v| v as f64)) as u64),
            rss_peak: runs.iter().filter_map(|r| r.rss_peak).max(),
        })
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Measures one run of `proto` at `rate` (or saturation) against `addr`,
/// whose proxy processes are `pids` (`hops` of them on the path).
pub async fn measure(
    addr: SocketAddr,
    pids: Vec<u32>,
    hops: usize,
    proto: Proto,
    rate: Option<u32>,
    options: &Options,
) -> Result<Row, Error> {
    peers::wait_up(addr, proto).await?;
    let hops = hops.max(1) as u64;
    // Idle: started and answered one request, before any load.
    let rss_idle = sum(pids.iter().map(|p| stats::rss_kib(*p)))
        .filter(|_| !pids.is_empty())
        .map(|v| v / hops);
    // Warm-up at the same load, not measured.
    let warm = Duration::from_millis(500);
    match rate {
        Some(rate) => drop(load::open_loop(addr, proto, rate, warm).await?),
        None => drop(load::saturate(addr, proto, options.concurrency, warm).await?),
    }
    let cpu_before = sum_f(pids.iter().map(|p| stats::cpu_seconds(*p)));
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pids) = (peak.clone(), sampling.clone(), pids.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = sum(pids.iter().map(|p| stats::rss_kib(*p))) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut result: LoadResult = match rate {
        Some(rate) => load::open_loop(addr, proto, rate, options.duration).await?,
        None => load::saturate(addr, proto, options.concurrency, options.duration).await?,
    };
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let cpu_after = sum_f(pids.iter().map(|p| stats::cpu_seconds(*p)));
    let requests = result.samples.len();
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if !pids.is_empty() => Some((a - b) / hops as f64),
        _ => None,
    };
    Ok(Row {
        latency: result.samples.summary(),
        requests,
        errors: result.errors,
        rps: requests as f64 / result.elapsed.as_secs_f64(),
        cpu_per_1k: cpu.map(|c| c / (requests as f64 / 1_000.0)),
        cores: cpu.map(|c| c / result.elapsed.as_secs_f64()),
        rss_idle,
        rss_peak: (!pids.is_empty()).then(|| peak.load(Ordering::Relaxed) / hops),
    })
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.sum()
}

fn sum_f(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.sum()
}
