//! `make bench-proxy`: latency added by weft (one and two proxies), HAProxy
//! and Envoy over a direct connection, at fixed request rates and at
//! saturation, over HTTP/1.1 and HTTP/2 with 1 KiB bodies; plus each proxy's
//! memory and CPU. Everything runs on loopback; paths are measured
//! interleaved (each rate runs every path before the next rate) so drift in
//! the machine's load spreads over all of them.
//!
//! Options (after `--`): `--duration SECS` per run (default 5), `--rates
//! 200,1000,2000` (or `none`: saturation only), `--concurrency N` for
//! saturation (default 64), `--repeat N` (each run N times, interleaved
//! round by round, default 3; the report gives medians), `--quick` (1 s
//! runs, one round, for a smoke test), `--paths
//! direct,weft1,weft2,haproxy,envoy`, `--protos h1,h2`, and `--variant
//! LABEL=BIN[@K=V,...]` (repeatable: another `weft-proxy` build, or extra
//! environment, measured as one more one-hop path in the same interleaved
//! run, e.g. `--variant before=/tmp/weft-proxy-before`; an empty BIN is
//! the benchmark's own `weft-proxy`: `--variant 2-threads=@WEFT_PROXY_CORES=2`).
//!
//! The `weft-proxy` measured is a copy taken at start, so a rebuild while
//! the benchmark runs cannot swap the binary between rounds.

mod load;
mod peers;
mod server;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use load::{LoadResult, Proto};
use peers::{Path, Variant};
use stats::Summary;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    duration: Duration,
    rates: Vec<u32>,
    concurrency: usize,
    repeat: usize,
    paths: Option<Vec<String>>,
    protos: Vec<Proto>,
    variants: Vec<Variant>,
    /// The `weft-proxy` of the weft paths.
    weft: std::path::PathBuf,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        duration: Duration::from_secs(5),
        rates: vec![200, 1000, 2000],
        concurrency: 64,
        // The machine is shared and noisy: medians of three interleaved
        // rounds move far less between runs than single runs do.
        repeat: 3,
        paths: None,
        protos: vec![Proto::H1, Proto::H2],
        variants: Vec::new(),
        weft: std::path::PathBuf::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                options.duration =
                    Duration::from_secs_f64(args.next().ok_or("--duration SECS")?.parse()?);
            }
            "--rates" => {
                let list = args.next().ok_or("--rates LIST")?;
                options.rates = if list == "none" {
                    Vec::new()
                } else {
                    list.split(',').map(str::parse).collect::<Result<_, _>>()?
                };
            }
            "--concurrency" => {
                options.concurrency = args.next().ok_or("--concurrency N")?.parse()?
            }
            "--quick" => {
                options.duration = Duration::from_secs(1);
                options.repeat = 1;
            }
            "--repeat" => {
                options.repeat = args.next().ok_or("--repeat N")?.parse::<usize>()?.max(1);
            }
            "--variant" => {
                let text = args.next().ok_or("--variant LABEL=BIN[@K=V,...]")?;
                options.variants.push(Variant::parse(&text)?);
            }
            "--paths" => {
                let list = args.next().ok_or("--paths LIST")?;
                options.paths = Some(list.split(',').map(str::to_owned).collect());
            }
            "--protos" => {
                let list = args.next().ok_or("--protos LIST")?;
                options.protos = list
                    .split(',')
                    .map(|p| match p {
                        "h1" => Ok(Proto::H1),
                        "h2" => Ok(Proto::H2),
                        other => Err(format!("unknown protocol {other}: h1 or h2")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            // cargo bench passes --bench; anything else is a filter we ignore.
            _ => {}
        }
    }
    Ok(options)
}

/// One measured run, or the medians of several.
#[derive(Clone)]
struct Row {
    latency: Summary,
    requests: usize,
    errors: usize,
    rps: f64,
    /// Per proxy: CPU seconds per 1,000 requests.
    cpu_per_1k: Option<f64>,
    /// Per proxy: cores busy on average during the run.
    cores: Option<f64>,
    /// Per proxy: RSS before the run (KiB).
    rss_idle: Option<u64>,
    /// Per proxy: peak RSS during the run (KiB).
    rss_peak: Option<u64>,
}

impl Row {
    /// Medians of `runs` (peak RSS: the highest; counts: the sums).
    fn combine(runs: &[Row]) -> Option<Row> {
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

async fn measure(
    path: Path,
    proto: Proto,
    server: std::net::SocketAddr,
    rate: Option<u32>,
    options: &Options,
) -> Result<Row, Error> {
    let running = peers::start(path, server, proto, &options.weft, &options.variants)?;
    peers::wait_up(running.addr, proto).await?;
    let pids = running.pids();
    let hops = path.hops().max(1) as u64;
    // Idle: started and answered one request, before any load.
    let rss_idle = sum(pids.iter().map(|p| stats::rss_kib(*p)))
        .filter(|_| !pids.is_empty())
        .map(|v| v / hops);
    // Warm-up at the same load, not measured.
    let warm = Duration::from_millis(500);
    match rate {
        Some(rate) => drop(load::open_loop(running.addr, proto, rate, warm).await?),
        None => drop(load::saturate(running.addr, proto, options.concurrency, warm).await?),
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
        Some(rate) => load::open_loop(running.addr, proto, rate, options.duration).await?,
        None => load::saturate(running.addr, proto, options.concurrency, options.duration).await?,
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

fn main() -> Result<(), Error> {
    let mut options = options()?;
    let weft = peers::Snapshot::take()?;
    options.weft = weft.path();
    let server = server::start()?;
    let wanted = |key: &str| {
        options
            .paths
            .as_ref()
            .is_none_or(|p| p.iter().any(|w| w == key))
    };
    let mut paths: Vec<Path> = [
        (Path::Direct, "direct"),
        (Path::Weft1, "weft1"),
        (Path::Weft2, "weft2"),
    ]
    .into_iter()
    .filter(|(_, key)| wanted(key))
    .map(|(path, _)| path)
    .collect();
    // Added latency is measured against direct: it always runs.
    if !paths.contains(&Path::Direct) {
        paths.insert(0, Path::Direct);
    }
    paths.extend((0..options.variants.len()).map(Path::Variant));
    for (tool, path) in [("haproxy", Path::Haproxy), ("envoy", Path::Envoy)] {
        if !wanted(tool) {
            continue;
        }
        if peers::available(tool) {
            paths.push(path);
        } else {
            eprintln!("{tool} not found: skipped (make bench-proxy-deps installs it)");
        }
    }
    // One worker: the load generator should not take both cores from the
    // proxies it measures; the upstream server runs on a thread of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut rows: HashMap<(Proto, Option<u32>, Path), Row> = HashMap::new();
    let loads: Vec<Option<u32>> = options
        .rates
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    for proto in options.protos.clone() {
        for load in &loads {
            let mut runs: HashMap<Path, Vec<Row>> = HashMap::new();
            for round in 1..=options.repeat {
                for path in &paths {
                    let label = match load {
                        Some(rate) => format!("{rate} rps"),
                        None => "saturation".to_owned(),
                    };
                    eprintln!(
                        "{} {} {label} (round {round}/{}) ...",
                        proto.name(),
                        path.name(&options.variants),
                        options.repeat
                    );
                    let row = runtime.block_on(measure(*path, proto, server, *load, &options))?;
                    runs.entry(*path).or_default().push(row);
                }
            }
            for (path, runs) in runs {
                if let Some(row) = Row::combine(&runs) {
                    rows.insert((proto, *load, path), row);
                }
            }
        }
    }
    print_report(&options, &paths, &loads, &rows);
    Ok(())
}

fn fmt_opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_report(
    options: &Options,
    paths: &[Path],
    loads: &[Option<u32>],
    rows: &HashMap<(Proto, Option<u32>, Path), Row>,
) {
    println!(
        "\nweft-proxy benchmark: {} s per run, {} run(s) per figure (medians), 1 KiB request and response bodies, loopback, {} CPUs\n",
        options.duration.as_secs_f64(),
        options.repeat,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for proto in options.protos.iter().copied() {
        println!(
            "### {} — latency (µs; added = path minus direct at the same percentile)\n",
            proto.name()
        );
        println!(
            "| load | path | p50 | p90 | p99 | max | added p50 | added p90 | added p99 | added max | requests | errors |"
        );
        println!(
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for load in loads.iter().filter(|l| l.is_some()) {
            let Some(direct) = rows.get(&(proto, *load, Path::Direct)) else {
                continue;
            };
            for path in paths {
                let Some(row) = rows.get(&(proto, *load, *path)) else {
                    continue;
                };
                let (l, d) = (row.latency, direct.latency);
                println!(
                    "| {} rps | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} | {:+.0} | {:+.0} | {:+.0} | {} | {} |",
                    fmt_opt(*load),
                    path.name(&options.variants),
                    l.p50,
                    l.p90,
                    l.p99,
                    l.max,
                    l.p50 - d.p50,
                    l.p90 - d.p90,
                    l.p99 - d.p99,
                    l.max - d.max,
                    row.requests,
                    row.errors
                );
            }
        }
        println!(
            "\n### {} — saturation ({} concurrent requests) and resources per proxy\n",
            proto.name(),
            options.concurrency
        );
        println!(
            "| path | saturation rps | p50 at saturation (µs) | RSS idle (KiB) | RSS peak at saturation (KiB) | CPU s per 1,000 req at 1,000 rps | cores at 1,000 rps | CPU s per 1,000 req at saturation |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for path in paths {
            let Some(sat) = rows.get(&(proto, None, *path)) else {
                continue;
            };
            let at_1k = rows.get(&(proto, Some(1000), *path));
            println!(
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                path.name(&options.variants),
                sat.rps,
                sat.latency.p50,
                fmt_opt(at_1k.map_or(sat.rss_idle, |r| r.rss_idle)),
                fmt_opt(sat.rss_peak),
                fmt_opt(at_1k.and_then(|r| r.cpu_per_1k).map(|v| format!("{v:.4}"))),
                fmt_opt(at_1k.and_then(|r| r.cores).map(|v| format!("{v:.3}"))),
                fmt_opt(sat.cpu_per_1k.map(|v| format!("{v:.4}"))),
            );
        }
        println!();
    }
}
