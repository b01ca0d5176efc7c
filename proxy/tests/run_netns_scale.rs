//! Thousands of concurrent connections between two meshed "pods" of the
//! rig (see `run_support::mesh`): every one is answered through both
//! proxies, both count exactly what crossed them, and once the clients
//! close, no connection or file descriptor is left in either proxy (read
//! from /proc/<pid>/fd of the proxy processes). Needs root.

mod run_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use run_support::mesh::{
    HTTP_PORT, at, connect_from, fds_back_to, mesh, stable_fd_count, wait_metric,
};
use run_support::{TestResult, body_bytes, metric};
use tokio::net::TcpSocket;
use weft_testrig::{Pod, Rig};

const CONNECTIONS: usize = 2_000;

/// One request on a fresh connection from `pod`.
async fn one_request(pod: &Pod<'_>, target: SocketAddr) -> TestResult {
    let stream = connect_from(pod, target).await?;
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get("/status/200")
        .header("host", "web.rig")
        .body(Full::new(Bytes::new()))?;
    h1.ready().await?;
    let response = h1.send_request(req).await?;
    assert_eq!(response.status(), 200);
    body_bytes(response).await?;
    Ok(())
}

/// A client that sends its own body, checks the echo, then keeps its
/// connection until every client has been answered.
async fn client(
    socket: TcpSocket,
    target: SocketAddr,
    i: usize,
    all_answered: Arc<tokio::sync::Barrier>,
    mut released: tokio::sync::watch::Receiver<bool>,
) -> TestResult {
    let stream = tokio::time::timeout(Duration::from_secs(60), socket.connect(target)).await??;
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let body = format!("client {i} through two proxies");
    let req = Request::post("/echo")
        .header("host", "web.rig")
        .body(Full::new(Bytes::from(body.clone())))?;
    h1.ready().await?;
    let response = h1.send_request(req).await?;
    assert_eq!(body_bytes(response).await?, body.as_bytes());
    all_answered.wait().await;
    released.wait_for(|go| *go).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_cross_two_proxies_and_leave_nothing_behind() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = mesh(&rig).await?;
    let target = at(m.server.ip(), HTTP_PORT);
    let sides = [(&m.client, "outbound", 0), (&m.server, "inbound", 1)];

    // Baseline: one request through, its connections closed, and each
    // proxy's descriptor count once it stops changing.
    one_request(&m.client, target).await?;
    for (pod, direction, _) in sides {
        let d = [("direction", direction)];
        wait_metric(pod, |t| {
            metric(t, "response_total", &d) == 1.0 && metric(t, "tcp_open_connections", &d) == 0.0
        })
        .await?;
    }
    let baseline = [
        stable_fd_count(&m.proxies[0]).await?,
        stable_fd_count(&m.proxies[1]).await?,
    ];

    // The client pod's sockets, made in its namespace; connected below.
    let sockets = m.client.in_netns(|| {
        (0..CONNECTIONS)
            .map(|_| TcpSocket::new_v4())
            .collect::<std::io::Result<Vec<_>>>()
    })??;
    let all_answered = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let (release, released) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        tasks.spawn(client(
            socket,
            target,
            i,
            all_answered.clone(),
            released.clone(),
        ));
    }
    tokio::select! {
        _ = all_answered.wait() => {}
        Some(failed) = tasks.join_next() => {
            return Err(format!("a client failed before all were answered: {failed:?}").into());
        }
    }

    // All open at once: each proxy holds every client connection and its
    // upstream connection, and counts them.
    for (pod, direction, proxy) in sides {
        let d = [("direction", direction)];
        wait_metric(pod, |t| {
            metric(t, "tcp_open_connections", &d) == CONNECTIONS as f64
                && metric(t, "response_total", &d) == 1.0 + CONNECTIONS as f64
        })
        .await?;
        fds_back_to(&m.proxies[proxy], baseline[proxy] + 2 * CONNECTIONS).await?;
    }

    release.send(true)?;
    while let Some(done) = tasks.join_next().await {
        done??;
    }

    // Every connection closed in both proxies, every request counted once
    // on each side, and the descriptors back where they started.
    let total = 1.0 + CONNECTIONS as f64;
    for (pod, direction, proxy) in sides {
        let d = [("direction", direction)];
        let text = wait_metric(pod, |t| metric(t, "tcp_open_connections", &d) == 0.0).await?;
        assert_eq!(metric(&text, "request_total", &d), total, "{direction}");
        let ok = [("direction", direction), ("classification", "success")];
        assert_eq!(metric(&text, "response_total", &ok), total, "{direction}");
        assert_eq!(metric(&text, "response_total", &d), total, "{direction}");
        let port = [("direction", direction), ("dst_port", "8080")];
        assert_eq!(metric(&text, "tcp_open_total", &port), total, "{direction}");
        assert_eq!(
            metric(&text, "tcp_close_total", &port),
            total,
            "{direction}"
        );
        fds_back_to(&m.proxies[proxy], baseline[proxy]).await?;
    }

    // Still healthy.
    one_request(&m.client, target).await?;
    Ok(())
}
