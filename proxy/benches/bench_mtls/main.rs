//! `cargo bench -p weft-proxy --bench bench_mtls`: what mesh TLS costs.
//!
//! Three paths to the same HTTP application on loopback, measured
//! interleaved so drift in the machine's load spreads over all of them:
//! `direct`, `plain2` (two proxies without mesh TLS) and
//! `mtls2` (two proxies with mesh TLS, certified by the stand-in control
//! plane of the `mtls_*` tests). Printed:
//!
//! 1. latency of sequential 1 KiB GETs on one keep-alive connection
//!    (p50/p90/p99/max, and added over direct);
//! 2. new connections per second, one GET each, 16 at a time — for `mtls2`
//!    that is mesh handshakes per second through both proxies (full
//!    handshakes: mesh TLS never resumes a session);
//! 3. the proxies' CPU per 1,000 requests in both runs;
//! 4. mesh TLS handshakes per second on one core, in process.
//!
//! Options (after `--`): `--quick` (shorter runs, a smoke test).

#[path = "../../tests/mtls_support/mod.rs"]
mod mtls_support;
#[path = "../../tests/run_support/mod.rs"]
mod run_support;

mod handshake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use mtls_support::{ControlPlane, MeshProxy, Pki, Spawn, meshed};
use run_support::{Binary, TestResult, h1_client, servers};

// Wall-clock measurement is what a benchmark is for; tests use tokio's
// pausable clock instead.
#[allow(clippy::disallowed_types)]
type Clock = std::time::Instant;

struct Settings {
    rounds: usize,
    per_round: usize,
    connect_run: Duration,
    handshakes: usize,
}

fn settings() -> Settings {
    if std::env::args().any(|a| a == "--quick") {
        Settings {
            rounds: 3,
            per_round: 200,
            connect_run: Duration::from_secs(1),
            handshakes: 300,
        }
    } else {
        Settings {
            rounds: 10,
            per_round: 1_000,
            connect_run: Duration::from_secs(4),
            handshakes: 3_000,
        }
    }
}

/// One way to reach the application, and the proxy processes on it.
struct Route {
    name: &'static str,
    entry: SocketAddr,
    pids: Vec<u32>,
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    // utime + stime, fields 14 and 15 of /proc/<pid>/stat (after the
    // parenthesised command name).
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

async fn get(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> TestResult {
    let req = Request::get("/bytes/1024")
        .header("host", "app.bench")
        .body(Empty::new())?;
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()).into());
    }
    response.into_body().collect().await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn latency(routes: &[Route], settings: &Settings) -> TestResult {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
    let mut ticks = vec![0u64; routes.len()];
    let mut senders = Vec::new();
    for route in routes {
        let mut sender = h1_client::<Empty<Bytes>>(route.entry).await?;
        get(&mut sender).await?; // connection and handshake out of the way
        senders.push(sender);
    }
    for _ in 0..settings.rounds {
        for (i, route) in routes.iter().enumerate() {
            let before = cpu_ticks(&route.pids);
            for _ in 0..settings.per_round {
                let start = Clock::now();
                get(&mut senders[i]).await?;
                samples[i].push(start.elapsed().as_secs_f64() * 1e6);
            }
            ticks[i] += cpu_ticks(&route.pids) - before;
        }
    }
    println!("\n### Latency, sequential 1 KiB GETs on one HTTP/1.1 connection (µs)\n");
    println!("| path | p50 | p90 | p99 | max | added p50 | added p99 | proxy CPU ms / 1,000 req |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut direct = None;
    for (i, route) in routes.iter().enumerate() {
        let mut s = std::mem::take(&mut samples[i]);
        s.sort_by(f64::total_cmp);
        let (p50, p90, p99, max) = (
            percentile(&s, 50.0),
            percentile(&s, 90.0),
            percentile(&s, 99.0),
            s.last().copied().unwrap_or(f64::NAN),
        );
        let (d50, d99) = *direct.get_or_insert((p50, p99));
        let requests = (settings.rounds * settings.per_round) as f64;
        let cpu_ms = ticks[i] as f64 / TICKS_PER_SECOND * 1e3 / requests * 1e3;
        let cpu = if route.pids.is_empty() {
            "-".to_owned()
        } else {
            format!("{cpu_ms:.0}")
        };
        println!(
            "| {} | {p50:.0} | {p90:.0} | {p99:.0} | {max:.0} | {:.0} | {:.0} | {cpu} |",
            route.name,
            p50 - d50,
            p99 - d99
        );
    }
    Ok(())
}

async fn connections(routes: &[Route], settings: &Settings) -> TestResult {
    const CONCURRENCY: usize = 16;
    println!("\n### New connections, one 1 KiB GET each, {CONCURRENCY} at a time\n");
    println!("| path | connections/s | failed | proxy CPU ms / 1,000 conn |");
    println!("| --- | --- | --- | --- |");
    for route in routes {
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let before = cpu_ticks(&route.pids);
        let start = Clock::now();
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (done, failed, stop, entry) =
                    (done.clone(), failed.clone(), stop.clone(), route.entry);
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = async {
                            let mut sender = h1_client::<Empty<Bytes>>(entry).await?;
                            get(&mut sender).await
                        }
                        .await;
                        match outcome {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        tokio::time::sleep(settings.connect_run).await;
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await?;
        }
        let seconds = start.elapsed().as_secs_f64();
        let n = done.load(Ordering::Relaxed) as f64;
        let cpu = if route.pids.is_empty() {
            "-".to_owned()
        } else {
            let ticks = cpu_ticks(&route.pids) - before;
            format!("{:.0}", ticks as f64 / TICKS_PER_SECOND * 1e3 / n * 1e3)
        };
        println!(
            "| {} | {:.0} | {} | {cpu} |",
            route.name,
            n / seconds,
            failed.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> TestResult {
    let settings = settings();
    let app = servers::http_app().await?;

    let plain_server = Binary::start(app.addr, &[("WEFT_PROXY_LOG", "error")]).await?;
    let plain_client = Binary::start(plain_server.inbound, &[("WEFT_PROXY_LOG", "error")]).await?;

    let pki = Pki::new("bench anchor")?;
    let control = ControlPlane::start(&pki).await?;
    let server_ip = mtls_support::loopback_ip();
    let server_inbound = mtls_support::inbound_at(server_ip);
    control.answer(server_inbound, meshed(server_inbound, "server", "server-0"));
    let quiet = [("WEFT_PROXY_LOG", "error")];
    let mesh_server = MeshProxy::spawn(
        &control,
        Spawn {
            sa: "server",
            inbound_target: app.addr,
            outbound_target: app.addr,
            ip: Some(server_ip),
            token: true,
            extra: &quiet,
        },
    )?;
    let mesh_client = MeshProxy::spawn(
        &control,
        Spawn {
            sa: "client",
            inbound_target: app.addr,
            outbound_target: server_inbound,
            ip: None,
            token: true,
            extra: &quiet,
        },
    )?;
    mesh_server.wait_ready(Duration::from_secs(20)).await?;
    mesh_client.wait_ready(Duration::from_secs(20)).await?;

    let routes = [
        Route {
            name: "direct",
            entry: app.addr,
            pids: Vec::new(),
        },
        Route {
            name: "plain2",
            entry: plain_client.outbound,
            pids: vec![plain_client.child.id(), plain_server.child.id()],
        },
        Route {
            name: "mtls2",
            entry: mesh_client.outbound,
            pids: vec![mesh_client.pid(), mesh_server.pid()],
        },
    ];
    println!(
        "bench_mtls: {} rounds x {} requests per path; {:?} per connection run",
        settings.rounds, settings.per_round, settings.connect_run
    );
    latency(&routes, &settings).await?;
    connections(&routes, &settings).await?;
    handshake::report(settings.handshakes).await?;
    Ok(())
}
