//! Destination throughput, printed rather than asserted (timing assertions
//! make flaky tests): lookups per second straight from the cache (one
//! thread, then all cores), index updates per second, and `/v1/resolve`
//! requests per second over loopback HTTP/1 with keep-alive.
//!
//! Run: `cargo test --release -p weft-control --test destination_bench -- --ignored --nocapture`
//! (`WEFT_BENCH_PODS` sets the number of pods, 10000 by default).

mod destination_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_control::destination::{
    Cache, Config, DestinationState, Metrics, PodInfo, Target, answer,
};

use destination_support::{Server, pod};

/// How long each measurement runs.
const RUN: Duration = Duration::from_secs(3);

fn pod_ip(i: usize) -> IpAddr {
    let i = u32::try_from(i).unwrap_or(u32::MAX);
    IpAddr::V4(Ipv4Addr::from(0x0af4_0000 | (i & 0xffff)))
}

fn pods() -> usize {
    std::env::var("WEFT_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .clamp(1, 65_535)
}

/// A cache with `n` pods, every other one meshed; returns the update rate.
fn filled_cache(n: usize) -> (Cache, f64) {
    let infos: Vec<PodInfo> = (0..n)
        .map(|i| {
            let p = pod(
                "bench",
                &format!("pod-{i}"),
                &pod_ip(i).to_string(),
                "sa",
                i.is_multiple_of(2),
            );
            PodInfo::from_pod(&p).expect("named pod")
        })
        .collect();
    let cache = Cache::new("cluster.local", Metrics::new());
    let started = Instant::now();
    for info in infos {
        cache.update(|index| index.apply_pod(info));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    cache.set_ready();
    (cache, rate)
}

/// Lookups on one thread for `RUN`, building the JSON answer's value too
/// when `answer` is set; returns per second.
fn lookups_on_one_thread(cache: &Cache, n: usize, seed: usize, answer: bool) -> f64 {
    let started = Instant::now();
    let mut done = 0usize;
    let mut meshed = 0usize;
    while started.elapsed() < RUN {
        for k in 0..1024 {
            // A stride that visits every pod, plus some addresses nobody has.
            let i = (seed + done + k * 7919) % (n + n / 10 + 1);
            let addr = SocketAddr::new(pod_ip(i), 8080);
            let target = cache.lookup(addr.ip());
            meshed += if answer {
                usize::from(answer::for_target(addr, target.as_ref(), 4143).meshed)
            } else {
                usize::from(matches!(target, Some(Target::Pod(e)) if e.meshed_on(addr.port())))
            };
        }
        done += 1024;
    }
    assert!(meshed > 0, "the bench looked up meshed pods");
    done as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints lookups/s; run with --release -- --ignored --nocapture"]
async fn lookups_per_second() {
    let n = pods();
    let (cache, updates) = filled_cache(n);
    println!("index: {n} pods applied at {updates:.0} pod updates/s");

    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let shared = Arc::new(cache.clone());
    for (answer, what) in [(false, "lookups"), (true, "lookups + answers")] {
        let one = lookups_on_one_thread(&cache, n, 0, answer);
        println!("cache {what}, 1 thread: {one:.0}/s");
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let cache = shared.clone();
                std::thread::spawn(move || lookups_on_one_thread(&cache, n, t * 104_729, answer))
            })
            .collect();
        let all: f64 = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum();
        println!("cache {what}, {threads} threads: {all:.0}/s");
    }

    // The same lookups through the HTTP API: a few keep-alive clients.
    let metrics = Metrics::new();
    let state = DestinationState::new(cache, Config::default(), metrics.clone());
    let server = Server::start(state).await;
    let clients = 16;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = server.client();
            tokio::spawn(async move {
                let mut done = 0usize;
                while started.elapsed() < RUN {
                    let i = (c * 7919 + done * 31) % n;
                    let body = client.resolve(&format!("{}:8080", pod_ip(i))).await;
                    assert_eq!(body["meshed"], i.is_multiple_of(2));
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut requests = 0usize;
    for task in tasks {
        requests += task.await.expect("client task");
    }
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    println!("HTTP /v1/resolve over loopback, {clients} keep-alive clients: {rate:.0} requests/s");
    server.stop().await;
}
