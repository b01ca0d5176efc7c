//! `make bench-proxy`: latency added by weft (one and two proxies), HAProxy
//! and Envoy over a direct connection, at fixed request rates and at
//! saturation, over HTTP/1.1 and HTTP/2 with 1 KiB bodies; plus each proxy's
//! memory and CPU. Everything runs on loopback; paths are measured
//! interleaved (each rate runs every path before the next rate) so drift in
//! the machine's load spreads over all of them.
//!
//! Options (after `--`): `--duration SECS` per run (default 5), `--rates
//! 200,1000,2000`, `--concurrency N` for saturation (default 64), `--quick`
//! (1 s runs, for a smoke test), `--paths direct,weft1,weft2,haproxy,envoy`,
//! `--protos h1,h2`.

mod load;
mod peers;
mod server;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use load::{LoadResult, Proto};
use peers::Path;
use stats::Summary;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    duration: Duration,
    rates: Vec<u32>,
    concurrency: usize,
    paths: Option<Vec<String>>,
    protos: Vec<Proto>,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        duration: Duration::from_secs(5),
        rates: vec![200, 1000, 2000],
        concurrency: 64,
        paths: None,
        protos: vec![Proto::H1, Proto::H2],
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
                options.rates = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--concurrency" => {
                options.concurrency = args.next().ok_or("--concurrency N")?.parse()?
            }
            "--quick" => options.duration = Duration::from_secs(1),
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

/// One measured run.
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

async fn measure(
    path: Path,
    proto: Proto,
    server: std::net::SocketAddr,
    rate: Option<u32>,
    options: &Options,
) -> Result<Row, Error> {
    let running = peers::start(path, server, proto)?;
    peers::wait_up(running.addr, proto).await?;
    // Warm-up at the same load, not measured.
    let warm = Duration::from_millis(500);
    match rate {
        Some(rate) => drop(load::open_loop(running.addr, proto, rate, warm).await?),
        None => drop(load::saturate(running.addr, proto, options.concurrency, warm).await?),
    }
    let pids = running.pids();
    let hops = path.hops().max(1) as u64;
    let rss_idle = sum(pids.iter().map(|p| stats::rss_kib(*p)))
        .filter(|_| !pids.is_empty())
        .map(|v| v / hops);
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
    let options = options()?;
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
    let mut rows: HashMap<(Proto, Option<u32>, &'static str), Row> = HashMap::new();
    let loads: Vec<Option<u32>> = options
        .rates
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    for proto in options.protos.clone() {
        for load in &loads {
            for path in &paths {
                let label = match load {
                    Some(rate) => format!("{rate} rps"),
                    None => "saturation".to_owned(),
                };
                eprintln!("{} {} {label} ...", proto.name(), path.name());
                let row = runtime.block_on(measure(*path, proto, server, *load, &options))?;
                rows.insert((proto, *load, path.name()), row);
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
    rows: &HashMap<(Proto, Option<u32>, &'static str), Row>,
) {
    println!(
        "\nweft-proxy benchmark: {} s per run, 1 KiB request and response bodies, loopback, {} CPUs\n",
        options.duration.as_secs_f64(),
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
            let Some(direct) = rows.get(&(proto, *load, Path::Direct.name())) else {
                continue;
            };
            for path in paths {
                let Some(row) = rows.get(&(proto, *load, path.name())) else {
                    continue;
                };
                let (l, d) = (row.latency, direct.latency);
                println!(
                    "| {} rps | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} | {:+.0} | {:+.0} | {:+.0} | {} | {} |",
                    fmt_opt(*load),
                    path.name(),
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
            "| path | saturation rps | p50 at saturation (µs) | RSS idle (KiB) | RSS peak at saturation (KiB) | CPU s per 1,000 req at 1,000 rps | cores at 1,000 rps |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for path in paths {
            let Some(sat) = rows.get(&(proto, None, path.name())) else {
                continue;
            };
            let at_1k = rows.get(&(proto, Some(1000), path.name()));
            println!(
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} |",
                path.name(),
                sat.rps,
                sat.latency.p50,
                fmt_opt(at_1k.and_then(|r| r.rss_idle)),
                fmt_opt(sat.rss_peak),
                fmt_opt(at_1k.and_then(|r| r.cpu_per_1k).map(|v| format!("{v:.4}"))),
                fmt_opt(at_1k.and_then(|r| r.cores).map(|v| format!("{v:.3}"))),
            );
        }
        println!();
    }
}
