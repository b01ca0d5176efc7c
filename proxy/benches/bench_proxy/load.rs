//! An open-loop load generator (requests leave on a fixed schedule whether
//! or not earlier ones finished, and latency counts from the scheduled time,
//! so a stall shows in the percentiles instead of slowing the load), and a
//! closed-loop one for saturation. HTTP/1.1 over a pool of connections or
//! HTTP/2 multiplexed over a few.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use super::server::BODY_SIZE;
use super::stats::Samples;

/// The protocol the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    H1,
    H2,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Self::H1 => "HTTP/1.1",
            Self::H2 => "HTTP/2",
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub samples: Samples,
    pub errors: usize,
    pub elapsed: Duration,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

const H1_CONNECTIONS: usize = 32;
const H2_CONNECTIONS: usize = 2;

fn request(proto: Proto) -> Result<Request<Full<Bytes>>, Error> {
    let body = Full::new(Bytes::from(vec![b'y'; BODY_SIZE]));
    let req = match proto {
        Proto::H1 => Request::post("/").header("host", "bench"),
        Proto::H2 => Request::post("http://bench/"),
    };
    Ok(req.body(body)?)
}

async fn connect(addr: SocketAddr) -> Result<TokioIo<tokio::net::TcpStream>, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

async fn h1_connection(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>, Error> {
    let (sender, conn) = http1::handshake(connect(addr).await?).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn h2_connection(addr: SocketAddr) -> Result<http2::SendRequest<Full<Bytes>>, Error> {
    let (sender, conn) = http2::handshake(TokioExecutor::new(), connect(addr).await?).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request on an HTTP/1 connection, body read to the end.
async fn h1_call(sender: &mut http1::SendRequest<Full<Bytes>>) -> Result<(), Error> {
    sender.ready().await?;
    let response = sender.send_request(request(Proto::H1)?).await?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()).into());
    }
    response.into_body().collect().await?;
    Ok(())
}

async fn h2_call(mut sender: http2::SendRequest<Full<Bytes>>) -> Result<(), Error> {
    sender.ready().await?;
    let response = sender.send_request(request(Proto::H2)?).await?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()).into());
    }
    response.into_body().collect().await?;
    Ok(())
}

/// Paces `rate` requests per second for `duration` on a thread of its own:
/// `std::thread::sleep` has a far finer resolution than tokio's 1 ms timer.
fn pacer(rate: u32, duration: Duration) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(due).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends `rate` requests per second for `duration`; latency is measured
/// from each request's scheduled time (latency correction).
pub async fn open_loop(
    addr: SocketAddr,
    proto: Proto,
    rate: u32,
    duration: Duration,
) -> Result<LoadResult, Error> {
    let jobs = pacer(rate, duration);
    let start = Instant::now();
    let mut result = match proto {
        Proto::H1 => open_loop_h1(addr, jobs).await?,
        Proto::H2 => open_loop_h2(addr, jobs).await?,
    };
    result.elapsed = start.elapsed();
    Ok(result)
}

async fn open_loop_h1(
    addr: SocketAddr,
    jobs: mpsc::UnboundedReceiver<Instant>,
) -> Result<LoadResult, Error> {
    let jobs = Arc::new(Mutex::new(jobs));
    let mut workers = Vec::new();
    for _ in 0..H1_CONNECTIONS {
        let mut sender = h1_connection(addr).await?;
        let jobs = jobs.clone();
        workers.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            loop {
                let due = { jobs.lock().await.recv().await };
                let Some(due) = due else { break };
                match h1_call(&mut sender).await {
                    Ok(()) => result.samples.push(due.elapsed()),
                    Err(_) => {
                        result.errors += 1;
                        match h1_connection(addr).await {
                            Ok(fresh) => sender = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            result
        }));
    }
    let mut total = LoadResult::default();
    for worker in workers {
        let part = worker.await?;
        total.samples.merge(part.samples);
        total.errors += part.errors;
    }
    Ok(total)
}

async fn open_loop_h2(
    addr: SocketAddr,
    mut jobs: mpsc::UnboundedReceiver<Instant>,
) -> Result<LoadResult, Error> {
    let mut senders = Vec::new();
    for _ in 0..H2_CONNECTIONS {
        senders.push(h2_connection(addr).await?);
    }
    let mut calls = tokio::task::JoinSet::new();
    let mut next = 0;
    while let Some(due) = jobs.recv().await {
        let sender = senders[next % senders.len()].clone();
        next += 1;
        calls.spawn(async move { h2_call(sender).await.map(|()| due.elapsed()) });
    }
    let mut total = LoadResult::default();
    while let Some(done) = calls.join_next().await {
        match done? {
            Ok(latency) => total.samples.push(latency),
            Err(_) => total.errors += 1,
        }
    }
    Ok(total)
}

/// As many requests as `concurrency` callers can make in `duration`.
pub async fn saturate(
    addr: SocketAddr,
    proto: Proto,
    concurrency: usize,
    duration: Duration,
) -> Result<LoadResult, Error> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut h2_senders = Vec::new();
    if proto == Proto::H2 {
        for _ in 0..H2_CONNECTIONS {
            h2_senders.push(h2_connection(addr).await?);
        }
    }
    let mut workers = Vec::new();
    for i in 0..concurrency {
        let h2 = h2_senders.get(i % H2_CONNECTIONS.max(1)).cloned();
        let mut h1 = match proto {
            Proto::H1 => Some(h1_connection(addr).await?),
            Proto::H2 => None,
        };
        workers.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = match (&mut h1, &h2) {
                    (Some(sender), _) => h1_call(sender).await,
                    (None, Some(sender)) => h2_call(sender.clone()).await,
                    (None, None) => break,
                };
                match outcome {
                    Ok(()) => result.samples.push(sent.elapsed()),
                    Err(_) => result.errors += 1,
                }
            }
            result
        }));
    }
    let mut total = LoadResult::default();
    for worker in workers {
        let part = worker.await?;
        total.samples.merge(part.samples);
        total.errors += part.errors;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}
