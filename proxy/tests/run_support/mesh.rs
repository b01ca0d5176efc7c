//! Two meshed "pods" of the test rig (e2e/rig): real iptables redirects
//! from `weft-proxy init` and the real `weft-proxy run` binary as UID 2102 in
//! each, and the test's own servers in the server pod (needs root; CI runs
//! as root, `WEFT_SKIP_ROOT_TESTS=1` skips elsewhere).
//!
//! The test plays both applications: its client sockets are made in the
//! client pod (so the redirect sends them to that pod's outbound proxy) and
//! its servers listen in the server pod (reached through that pod's inbound
//! proxy). Every byte crosses two proxies, as between two meshed pods.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use weft_testrig::{Pod, PodProcess, Rig};

use super::TestResult;
use super::servers::{self, HttpApp};

/// The proxy binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");
/// The proxy's UID, as the injector sets it.
pub const PROXY_UID: u32 = 2102;
/// The HTTP application (HTTP/1, HTTP/2, gRPC, WebSocket).
pub const HTTP_PORT: u16 = 8080;
/// The payload exchange server.
pub const EXCHANGE_PORT: u16 = 9000;
/// A server that speaks first.
pub const GREETING_PORT: u16 = 2525;
/// A server that answers after the client's EOF.
pub const AFTER_EOF_PORT: u16 = 7000;
/// Skipped by the client pod's outbound redirect.
pub const SKIPPED_PORT: u16 = 3306;
/// The proxy's admin port.
pub const ADMIN_PORT: u16 = 4191;

/// `ip:port`.
pub fn at(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// Runs `weft-proxy init` in `pod` as root.
pub fn init(pod: &Pod<'_>, args: &[&str]) -> TestResult {
    let out = pod.command(BIN).arg("init").args(args).output()?;
    if !out.status.success() {
        return Err(format!("init failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// Starts `weft-proxy run` in `pod` as the proxy user, with the env the
/// injector writes (defaults for the rest).
pub fn start_proxy(pod: &Pod<'_>) -> TestResult<PodProcess> {
    let mut cmd = pod.command_as(PROXY_UID, BIN);
    cmd.arg("run")
        .env_clear()
        .env("WEFT_PROXY_LOG", "warn")
        .env("WEFT_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:4143")
        .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:4140")
        .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:4191")
        .env("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "2s")
        .env("WEFT_PROXY_POD_IP", pod.ip().to_string());
    Ok(pod.spawn(cmd)?)
}

/// A TCP connection made from inside `pod`, as its application would.
pub async fn connect_from(pod: &Pod<'_>, to: SocketAddr) -> TestResult<TcpStream> {
    let socket = pod.in_netns(TcpSocket::new_v4)??;
    Ok(tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await??)
}

/// A listener bound to 0.0.0.0:`port` inside `pod`, with room for a burst
/// of thousands of connections.
pub fn listen_in(pod: &Pod<'_>, port: u16) -> TestResult<TcpListener> {
    let listener = pod.in_netns(|| -> std::io::Result<std::net::TcpListener> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
        socket.listen(4096)?;
        Ok(socket.into())
    })??;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// GET on a pod's admin port from inside the pod (loopback, not redirected).
pub async fn admin(pod: &Pod<'_>, path: &str) -> TestResult<(u16, String)> {
    let stream = connect_from(pod, at(Ipv4Addr::LOCALHOST, ADMIN_PORT)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "admin")
        .body(Full::new(Bytes::new()))?;
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits until the proxy in `pod` answers `/ready`.
pub async fn wait_ready(pod: &Pod<'_>) -> TestResult {
    for _ in 0..200 {
        if let Ok((200, _)) = admin(pod, "/ready").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("proxy in {} never became ready", pod.name()).into())
}

/// Polls the metrics of the proxy in `pod` until `check` passes.
pub async fn wait_metric(pod: &Pod<'_>, check: impl Fn(&str) -> bool) -> TestResult<String> {
    let mut last = String::new();
    for _ in 0..500 {
        let (_, text) = admin(pod, "/metrics").await?;
        if check(&text) {
            return Ok(text);
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("metrics of {} never matched:\n{last}", pod.name()).into())
}

/// Open descriptors of a proxy process (`ip netns exec` and `setpriv` exec
/// into the program, so the pid is the proxy's own).
pub fn fd_count(proxy: &PodProcess) -> TestResult<usize> {
    Ok(std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))?.count())
}

/// Waits until a proxy holds exactly `baseline` descriptors (the upstream
/// side of a closed connection closes a moment after the client side).
pub async fn fds_back_to(proxy: &PodProcess, baseline: usize) -> TestResult {
    let mut fds = fd_count(proxy)?;
    for _ in 0..200 {
        if fds == baseline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds = fd_count(proxy)?;
    }
    Err(format!(
        "proxy {} holds {fds} descriptors, {baseline} before",
        proxy.pid()
    )
    .into())
}

/// The descriptor count of a proxy once it stops changing.
pub async fn stable_fd_count(proxy: &PodProcess) -> TestResult<usize> {
    let mut last = fd_count(proxy)?;
    let mut same = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = fd_count(proxy)?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 8 {
            return Ok(last);
        }
    }
    Err("descriptor count never settled".into())
}

/// Two meshed pods with their proxies running and the test's servers
/// listening in the server pod.
pub struct Mesh<'rig> {
    pub client: Pod<'rig>,
    pub server: Pod<'rig>,
    /// The client pod's proxy, then the server pod's.
    pub proxies: [PodProcess; 2],
    pub app: HttpApp,
    pub exchange: tokio::sync::mpsc::UnboundedReceiver<servers::Received>,
}

/// Builds the two pods of `rig`: the client pod skips [`SKIPPED_PORT`]
/// outbound, the server pod runs every test server.
pub async fn mesh(rig: &Rig) -> TestResult<Mesh<'_>> {
    let client = rig.pod("client")?;
    let server = rig.pod("server")?;
    init(&client, &[&format!("--skip-outbound-ports={SKIPPED_PORT}")])?;
    init(&server, &[])?;
    let app = servers::http_app_on(listen_in(&server, HTTP_PORT)?)?;
    let (_, exchange) = servers::exchange_server_on(listen_in(&server, EXCHANGE_PORT)?)?;
    servers::greeting_server_on(
        listen_in(&server, GREETING_PORT)?,
        b"220 server.rig ESMTP\r\n",
    )?;
    servers::after_eof_server_on(listen_in(&server, AFTER_EOF_PORT)?)?;
    servers::after_eof_server_on(listen_in(&server, SKIPPED_PORT)?)?;
    let proxies = [start_proxy(&client)?, start_proxy(&server)?];
    wait_ready(&client).await?;
    wait_ready(&server).await?;
    Ok(Mesh {
        client,
        server,
        proxies,
        app,
        exchange,
    })
}
