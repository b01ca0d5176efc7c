//! The real `weft-proxy run` binary under abuse: clients that vanish
//! mid-request, upstreams that reset or never answer, and thousands of
//! concurrent connections leave it healthy, with every connection closed and
//! its file descriptors back where they started.

mod run_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use run_support::{
    Binary, TestResult, admin_get, body_bytes, h1_client, metric, request, servers, wait_metrics,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits until no proxied connection is open and the proxy holds exactly
/// `baseline` descriptors.
async fn settled(proxy: &Binary, baseline: usize) -> TestResult {
    wait_metrics(proxy.admin, |t| {
        metric(t, "tcp_open_connections", &[]) == 0.0
    })
    .await?;
    let mut fds = proxy.fd_count()?;
    for _ in 0..100 {
        if fds == baseline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds = proxy.fd_count()?;
    }
    Err(format!("proxy holds {fds} descriptors, {baseline} before").into())
}

async fn baseline(proxy: &Binary) -> TestResult<usize> {
    // One request first, so lazily opened descriptors (none expected) exist.
    let mut client = h1_client(proxy.inbound).await?;
    let response = client
        .send_request(request("GET", "/status/200", "")?)
        .await?;
    body_bytes(response).await?;
    drop(client);
    wait_metrics(proxy.admin, |t| {
        metric(t, "tcp_open_connections", &[]) == 0.0
    })
    .await?;
    stable_fd_count(proxy).await
}

/// The descriptor count once it stops changing: the upstream side of a
/// closed connection closes a moment after the client side.
async fn stable_fd_count(proxy: &Binary) -> TestResult<usize> {
    let mut last = proxy.fd_count()?;
    let mut same = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = proxy.fd_count()?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 8 {
            return Ok(last);
        }
    }
    Err("descriptor count never settled".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_leaves_no_connection_or_descriptor_behind() -> TestResult {
    let app = servers::http_app().await?;
    let resetting = servers::reset_server().await?;
    let silent = servers::silent_server().await?;
    let proxy = Binary::start(
        app.addr,
        &[("WEFT_PROXY_OUTBOUND_FIXED_TARGET", &resetting.to_string())],
    )
    .await?;
    let fds = baseline(&proxy).await?;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let inbound = proxy.inbound;
        let outbound = proxy.outbound;
        // A client that promises a body and vanishes after a few bytes.
        tasks.spawn(async move {
            let mut s = TcpStream::connect(inbound).await?;
            s.write_all(
                b"POST /echo HTTP/1.1\r\nhost: web\r\ncontent-length: 100000\r\n\r\nonly a few",
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
        // A client that gives up on an upstream that never answers.
        tasks.spawn(async move {
            let mut s = TcpStream::connect(inbound).await?;
            s.write_all(b"GET /hang HTTP/1.1\r\nhost: web\r\n\r\n")
                .await?;
            let mut buf = [0u8; 64];
            let answer = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
            assert!(answer.is_err(), "{answer:?}");
            Ok(())
        });
        // An upstream that fails mid-body.
        tasks.spawn(async move {
            let mut client = h1_client::<Full<Bytes>>(inbound).await?;
            client.ready().await?;
            let response = client.send_request(request("GET", "/abort", "")?).await?;
            assert!(response.into_body().collect().await.is_err());
            Ok(())
        });
        // An upstream that resets at once: HTTP gets a 502...
        tasks.spawn(async move {
            let mut client = h1_client::<Full<Bytes>>(outbound).await?;
            client.ready().await?;
            let response = client.send_request(request("GET", "/", "")?).await?;
            assert_eq!(response.status(), 502);
            Ok(())
        });
        // ...and opaque bytes a closed connection.
        tasks.spawn(async move {
            let mut s = TcpStream::connect(outbound).await?;
            s.write_all(b"\x00\x01opaque").await?;
            let mut buf = [0u8; 8];
            let read = s.read(&mut buf).await;
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
            Ok(())
        });
        // A client that connects and leaves without a byte.
        tasks.spawn(async move {
            drop(TcpStream::connect(inbound).await?);
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    settled(&proxy, fds).await?;

    // An upstream that never answers a raw TCP client either: the proxy
    // holds the connection as long as the client does, and no longer.
    let hold = Binary::start(silent, &[]).await?;
    let hold_fds = baseline_tcp(&hold).await?;
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(hold.inbound).await?;
        s.write_all(b"\x00hello?").await?;
        held.push(s);
    }
    wait_metrics(hold.admin, |t| {
        metric(t, "tcp_open_connections", &[]) == 50.0
    })
    .await?;
    drop(held);
    settled(&hold, hold_fds).await?;

    // Still healthy.
    assert_eq!(admin_get(proxy.admin, "/live").await?.0, 200);
    let mut client = h1_client(proxy.inbound).await?;
    client.ready().await?;
    let response = client
        .send_request(request("GET", "/status/200", "")?)
        .await?;
    assert_eq!(response.status(), 200);
    Ok(())
}

async fn baseline_tcp(proxy: &Binary) -> TestResult<usize> {
    let mut s = TcpStream::connect(proxy.inbound).await?;
    s.write_all(b"\x00warm").await?;
    drop(s);
    wait_metrics(proxy.admin, |t| metric(t, "tcp_close_total", &[]) == 1.0).await?;
    stable_fd_count(proxy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_connections() -> TestResult {
    const CONNECTIONS: usize = 2_000;
    let app = servers::http_app().await?;
    let proxy = Binary::start(app.addr, &[]).await?;
    let fds = baseline(&proxy).await?;
    let idle_rss = proxy.rss_kib()?;
    // Every client holds its connection open until all have been answered
    // and the open connections counted.
    let all_answered = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let (release, released) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let inbound = proxy.inbound;
        let all_answered = all_answered.clone();
        let mut released = released.clone();
        tasks.spawn(async move {
            let result: TestResult = async {
                let mut client = h1_client::<Full<Bytes>>(inbound).await?;
                let body = format!("client {i}");
                let req = Request::post("/echo")
                    .header("host", "web")
                    .body(Full::new(Bytes::from(body.clone())))?;
                client.ready().await?;
                let response = client.send_request(req).await?;
                assert_eq!(body_bytes(response).await?, body.as_bytes());
                all_answered.wait().await;
                released.wait_for(|go| *go).await?;
                Ok(())
            }
            .await;
            result
        });
    }
    all_answered.wait().await;
    let text = wait_metrics(proxy.admin, |t| {
        metric(t, "response_total", &[]) >= CONNECTIONS as f64
    })
    .await?;
    assert_eq!(
        metric(&text, "tcp_open_connections", &[("direction", "inbound")]),
        CONNECTIONS as f64
    );
    let loaded_rss = proxy.rss_kib()?;
    println!(
        "proxy RSS: {idle_rss} KiB idle, {loaded_rss} KiB with {CONNECTIONS} open connections"
    );
    release.send(true)?;
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    settled(&proxy, fds).await?;
    let (_, text) = admin_get(proxy.admin, "/metrics").await?;
    assert_eq!(
        metric(&text, "request_total", &[]),
        CONNECTIONS as f64 + 1.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("classification", "success")]),
        CONNECTIONS as f64 + 1.0
    );
    Ok(())
}
