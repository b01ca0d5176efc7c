//! `make bench-proxy`: latency added by weft (one and two proxies), HAProxy
//! and Envoy over a direct connection, at fixed request rates and at
//! saturation, over HTTP/1.1 and HTTP/2 with 1 KiB bodies; plus each proxy's
//! memory and CPU. Paths are measured interleaved (each rate runs every
//! path before the next rate) so drift in the machine's load spreads over
//! all of them. By default everything runs on the host's loopback, weft
//! with fixed targets; `--netns` (root) runs each path between pods of the
//! test rig instead, weft behind the real iptables redirect (see `netns`).
//!
//! Options (after `--`): `--duration SECS` per run (default 5), `--rates
//! 200,1000,2000` (or `none`: saturation only), `--concurrency N` for
//! saturation (default 64), `--repeat N` (each run N times, interleaved
//! round by round, default 3; the report gives medians), `--quick` (1 s
//! runs, one round, for a smoke test), `--netns`, `--paths
//! direct,weft1,weft2,haproxy,envoy`, `--protos h1,h2`, and `--variant
//! LABEL=BIN[@K=V,...]` (repeatable: another `weft-proxy` build, or extra
//! environment, measured as one more one-hop path in the same interleaved
//! run, e.g. `--variant before=/tmp/weft-proxy-before`; an empty BIN is
//! the benchmark's own `weft-proxy`: `--variant 2-threads=@WEFT_PROXY_CORES=2`).
//!
//! The `weft-proxy` measured is a copy taken at start, so a rebuild while
//! the benchmark runs cannot swap the binary between rounds.

mod load;
mod measure;
mod netns;
mod paths;
mod peers;
mod report;
mod server;
mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use load::Proto;
use measure::Row;
use paths::{Path, Variant};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the command line asked for.
pub struct Options {
    pub duration: Duration,
    pub rates: Vec<u32>,
    pub concurrency: usize,
    pub repeat: usize,
    pub paths: Option<Vec<String>>,
    pub protos: Vec<Proto>,
    pub variants: Vec<Variant>,
    /// The `weft-proxy` of the weft paths.
    pub weft: PathBuf,
    /// Between rig pods through the iptables redirect, not on loopback.
    pub netns: bool,
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
        weft: PathBuf::new(),
        netns: false,
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
            "--netns" => options.netns = true,
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

fn main() -> Result<(), Error> {
    let mut options = options()?;
    let weft = paths::Snapshot::take()?;
    options.weft = weft.path();
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
    let rows = if options.netns {
        let rig = weft_testrig::Rig::new()?;
        let topology = netns::Topology::build(&rig, &paths, &options.weft)?;
        run_all(&options, &paths, |path, proto, rate| {
            let running = topology.start(path, proto, &options.weft, &options.variants)?;
            let (addr, pids) = (running.addr, running.pids());
            topology.in_client(path, || {
                load_runtime()?.block_on(measure::measure(
                    addr,
                    pids,
                    path.hops(),
                    proto,
                    rate,
                    &options,
                ))
            })?
        })?
    } else {
        let server = server::start(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let runtime = load_runtime()?;
        run_all(&options, &paths, |path, proto, rate| {
            let running =
                peers::start_loopback(path, server, proto, &options.weft, &options.variants)?;
            runtime.block_on(measure::measure(
                running.addr,
                running.pids(),
                path.hops(),
                proto,
                rate,
                &options,
            ))
        })?
    };
    let loads = loads(&options);
    report::print_report(&options, &paths, &loads, &rows);
    Ok(())
}

/// The load generator's runtime. One worker: it should not take both cores
/// from the proxies it measures; the server runs on a thread of its own.
fn load_runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// The fixed rates, then saturation (`None`).
fn loads(options: &Options) -> Vec<Option<u32>> {
    options
        .rates
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect()
}

/// Every protocol and load, every path within each round (interleaved),
/// `repeat` rounds; the medians of each path's rounds.
fn run_all(
    options: &Options,
    paths: &[Path],
    mut run: impl FnMut(Path, Proto, Option<u32>) -> Result<Row, Error>,
) -> Result<measure::Rows, Error> {
    let mut rows = HashMap::new();
    for proto in options.protos.iter().copied() {
        for load in loads(options) {
            let mut runs: HashMap<Path, Vec<Row>> = HashMap::new();
            for round in 1..=options.repeat {
                for path in paths {
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
                    runs.entry(*path)
                        .or_default()
                        .push(run(*path, proto, load)?);
                }
            }
            for (path, runs) in runs {
                if let Some(row) = Row::combine(&runs) {
                    rows.insert((proto, load, path), row);
                }
            }
        }
    }
    Ok(rows)
}
