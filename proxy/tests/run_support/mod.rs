//! Shared pieces of the `run_*` tests: the proxy started in-process or as the
//! real binary, upstream test servers, HTTP clients and a metrics reader.
//! Everything listens on 127.0.0.1 only.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod grpc;
pub mod grpc_app;
pub mod grpc_scenarios;
pub mod mesh;
pub mod servers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_proxy::run::drain::Drain;
use weft_proxy::run::{Config, Proxy};

/// Test result type: any error fails the test with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A proxy running in this process, both directions sent to `upstream`.
pub struct InProcess {
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub drain: Drain,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the library's proxy on 127.0.0.1:0 with fixed targets.
pub async fn start_proxy(upstream: SocketAddr, extra: &[(&str, &str)]) -> TestResult<InProcess> {
    let upstream = upstream.to_string();
    let mut env: HashMap<String, String> = [
        ("WEFT_PROXY_INBOUND_LISTEN_ADDR", "127.0.0.1:0"),
        ("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:0"),
        ("WEFT_PROXY_ADMIN_LISTEN_ADDR", "127.0.0.1:0"),
        ("WEFT_PROXY_INBOUND_FIXED_TARGET", upstream.as_str()),
        ("WEFT_PROXY_OUTBOUND_FIXED_TARGET", upstream.as_str()),
        ("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "5s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_env(&env)?;
    let proxy = Proxy::bind(config).await?;
    let started = InProcess {
        inbound: proxy.inbound_addr()?,
        outbound: proxy.outbound_addr()?,
        admin: proxy.admin_addr()?,
        drain: proxy.drain(),
        task: tokio::spawn(proxy.serve()),
    };
    Ok(started)
}

/// The real `weft-proxy run` binary, killed on drop.
pub struct Binary {
    pub child: Child,
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
}

impl Binary {
    /// Starts the binary with fixed targets and free loopback ports, and
    /// waits for `/ready`.
    pub async fn start(upstream: SocketAddr, extra: &[(&str, &str)]) -> TestResult<Self> {
        let inbound = free_port()?;
        let outbound = free_port()?;
        let admin = free_port()?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft-proxy"));
        cmd.arg("run")
            .env_clear()
            .env("WEFT_PROXY_LOG", "warn")
            .env("WEFT_PROXY_INBOUND_LISTEN_ADDR", inbound.to_string())
            .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", outbound.to_string())
            .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", admin.to_string())
            .env("WEFT_PROXY_INBOUND_FIXED_TARGET", upstream.to_string())
            .env("WEFT_PROXY_OUTBOUND_FIXED_TARGET", upstream.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let binary = Self {
            child,
            inbound,
            outbound,
            admin,
        };
        binary.wait_ready().await?;
        Ok(binary)
    }

    async fn wait_ready(&self) -> TestResult {
        for _ in 0..200 {
            if let Ok((200, _)) = admin_get(self.admin, "/ready").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err("proxy binary never became ready".into())
    }

    /// Open file descriptors of the proxy process.
    pub fn fd_count(&self) -> TestResult<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))?.count())
    }

    /// Resident memory of the proxy process, in KiB.
    pub fn rss_kib(&self) -> TestResult<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "no VmRSS".into())
    }

    /// Sends SIGTERM (with kill(1): the tests stay free of unsafe code).
    pub fn sigterm(&self) -> TestResult {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err("kill -TERM failed".into())
        }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> TestResult<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                return Err("proxy did not exit in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> TestResult<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// GET on the admin server; returns status and body.
pub async fn admin_get(admin: SocketAddr, path: &str) -> TestResult<(u16, String)> {
    admin_request(admin, "GET", path).await
}

/// Any method on the admin server.
pub async fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
) -> TestResult<(u16, String)> {
    let mut sender = h1_client(admin).await?;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An HTTP/1 client connection to `addr`, with upgrades enabled.
pub async fn h1_client<B>(
    addr: SocketAddr,
) -> TestResult<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

/// An HTTP/2 (prior knowledge) client connection to `addr`.
pub async fn h2_client<B>(
    addr: SocketAddr,
) -> TestResult<hyper::client::conn::http2::SendRequest<B>>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A request with a full body.
pub fn request(
    method: &str,
    uri: &str,
    body: impl Into<Bytes>,
) -> TestResult<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "web.test:8080")
        .body(Full::new(body.into()))?)
}

/// Collects a response's body.
pub async fn body_bytes(response: Response<Incoming>) -> TestResult<Bytes> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The summed value of every series of `name` whose labels include `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            if all { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

/// Polls `/metrics` until `check` passes (responses are counted when the
/// proxy drops their bodies, just after the client sees them end).
pub async fn wait_metrics(admin: SocketAddr, check: impl Fn(&str) -> bool) -> TestResult<String> {
    let mut last = String::new();
    for _ in 0..100 {
        let (_, text) = admin_get(admin, "/metrics").await?;
        if check(&text) {
            return Ok(text);
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("metrics never matched; last scrape:\n{last}").into())
}

/// A deterministic pseudo-random byte stream (xorshift64*), so payloads are
/// reproducible from their seed without storing them.
pub struct Payload {
    state: u64,
}

impl Payload {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Writes `len` payload bytes from `seed`, then shuts the write half.
/// Returns their SHA-256.
pub async fn send_payload<W: AsyncWrite + Unpin>(
    writer: &mut W,
    seed: u64,
    len: usize,
) -> TestResult<[u8; 32]> {
    let mut payload = Payload::new(seed);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        payload.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        writer.write_all(&buf[..n]).await?;
        left -= n;
    }
    writer.shutdown().await?;
    Ok(hash.finalize().into())
}

/// Reads to EOF; returns the byte count and SHA-256.
pub async fn hash_to_eof<R: AsyncRead + Unpin>(reader: &mut R) -> TestResult<(usize, [u8; 32])> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, hash.finalize().into()));
        }
        hash.update(&buf[..n]);
        total += n;
    }
}
