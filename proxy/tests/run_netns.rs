//! The proxy between two meshed "pods" of the rig (see `run_support::mesh`):
//! HTTP/1.1, gRPC over HTTP/2 and WebSocket, opaque TCP with byte-exact
//! payloads and half-close, a server that speaks first, and skipped ports,
//! each crossing the client pod's outbound proxy and the server pod's
//! inbound proxy (needs root; `WEFT_SKIP_ROOT_TESTS=1` skips elsewhere).

mod run_support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use run_support::mesh::{
    AFTER_EOF_PORT, EXCHANGE_PORT, GREETING_PORT, HTTP_PORT, SKIPPED_PORT, admin, at, connect_from,
    mesh, wait_metric,
};
use run_support::{Payload, TestResult, hash_to_eof, metric, send_payload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_testrig::Rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_grpc_and_websocket_cross_two_proxies_and_both_count_them() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = mesh(&rig).await?;
    let target = at(m.server.ip(), HTTP_PORT);

    // HTTP/1.1: 10 successes and 3 failures on one connection.
    let stream = connect_from(&m.client, target).await?;
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn.with_upgrades());
    for code in [200u16; 10].into_iter().chain([503; 3]) {
        let req = Request::get(format!("/status/{code}"))
            .header("host", "web.rig")
            .body(Full::new(Bytes::new()))?;
        h1.ready().await?;
        let response = h1.send_request(req).await?;
        assert_eq!(response.status().as_u16(), code);
        response.into_body().collect().await?;
    }

    // gRPC over HTTP/2: 3 OK, 2 Unavailable.
    let stream = connect_from(&m.client, target).await?;
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    for code in ["0", "0", "0", "14", "14"] {
        let req = Request::post(format!("http://grpc.rig/grpc/{code}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))?;
        h2.ready().await?;
        let collected = h2.send_request(req).await?.into_body().collect().await?;
        let status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes().to_vec());
        assert_eq!(status.as_deref(), Some(code.as_bytes()));
    }

    // WebSocket upgrade, echoed through both proxies.
    let stream = connect_from(&m.client, target).await?;
    let (mut ws, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn.with_upgrades());
    let req = Request::get("/ws")
        .header("host", "web.rig")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))?;
    ws.ready().await?;
    let response = ws.send_request(req).await?;
    assert_eq!(response.status(), 101);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await?);
    io.write_all(b"ping through two proxies").await?;
    let mut echo = [0u8; 24];
    io.read_exact(&mut echo).await?;
    assert_eq!(&echo, b"ping through two proxies");

    // 13 + 5 + 1 requests on each side: none lost, none looped.
    for (pod, direction) in [(&m.client, "outbound"), (&m.server, "inbound")] {
        let d = [("direction", direction)];
        let text = wait_metric(pod, |t| metric(t, "response_total", &d) == 19.0).await?;
        assert_eq!(metric(&text, "request_total", &d), 19.0, "{direction}");
        assert_eq!(
            metric(
                &text,
                "response_total",
                &[("direction", direction), ("classification", "failure")]
            ),
            5.0
        );
        assert_eq!(
            metric(
                &text,
                "response_total",
                &[("direction", direction), ("grpc_status", "14")]
            ),
            2.0
        );
        assert_eq!(
            metric(
                &text,
                "request_total",
                &[("direction", direction), ("dst_port", "8080")]
            ),
            19.0
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_is_byte_exact_with_half_close_and_server_first() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let mut m = mesh(&rig).await?;

    // Random payloads both ways, a few bytes to 100 MB.
    for (i, size) in [3usize, 4_096, 1_000_003, 100 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let stream = connect_from(&m.client, at(m.server.ip(), EXCHANGE_PORT)).await?;
        let (mut read, mut write) = stream.into_split();
        let seed = 100 + i as u64;
        let down_seed = seed + 1_000;
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&down_seed.to_le_bytes());
        header[8..].copy_from_slice(&(size as u64).to_le_bytes());
        write.write_all(&header).await?;
        let sender = tokio::spawn(async move {
            send_payload(&mut write, seed, size)
                .await
                .map_err(|e| e.to_string())
        });
        let (got, got_hash) = hash_to_eof(&mut read).await?;
        let sent_hash = sender.await??;
        let received = tokio::time::timeout(Duration::from_secs(60), m.exchange.recv())
            .await?
            .ok_or("server gone")?;
        assert_eq!(
            (received.len, received.sha256),
            (size, sent_hash),
            "up {size}"
        );
        let expected = send_payload(&mut tokio::io::sink(), down_seed, size).await?;
        assert_eq!((got, got_hash), (size, expected), "down {size}");
    }

    // Half-close: the server answers only after our EOF.
    let mut stream = connect_from(&m.client, at(m.server.ip(), AFTER_EOF_PORT)).await?;
    let mut request = vec![0u8; 1234];
    Payload::new(5).fill(&mut request);
    request[0] = 0;
    stream.write_all(&request).await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert_eq!(answer, "got 1234 bytes\n");

    // Server speaks first.
    let start = tokio::time::Instant::now();
    let mut stream = connect_from(&m.client, at(m.server.ip(), GREETING_PORT)).await?;
    let mut greeting = [0u8; 22];
    stream.read_exact(&mut greeting).await?;
    println!("greeting through two proxies after {:?}", start.elapsed());
    assert_eq!(&greeting, b"220 server.rig ESMTP\r\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_ports_bypass_the_outbound_proxy() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = mesh(&rig).await?;
    let mut stream = connect_from(&m.client, at(m.server.ip(), SKIPPED_PORT)).await?;
    stream.write_all(b"\0skip").await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert_eq!(answer, "got 5 bytes\n");
    drop(stream);
    // The server pod has no skip list: its inbound proxy saw the connection,
    // the client's outbound proxy did not.
    let port = [("dst_port", "3306")];
    wait_metric(&m.server, |t| metric(t, "tcp_close_total", &port) == 1.0).await?;
    let (_, text) = admin(&m.client, "/metrics").await?;
    assert_eq!(metric(&text, "tcp_open_total", &port), 0.0);
    Ok(())
}
