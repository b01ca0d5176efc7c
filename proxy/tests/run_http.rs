//! HTTP through the proxy (in-process, loopback, fixed target): HTTP/1.1
//! keep-alive, HTTP/2 multiplexing, gRPC trailers, WebSocket upgrade,
//! hop-by-hop headers, streamed bodies, and 502 on a dead upstream.

mod run_support;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use run_support::servers::{self, sha256};
use run_support::{TestResult, body_bytes, h1_client, h2_client, request, start_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn http1_keep_alive_reuses_one_upstream_connection() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    for i in 0..20 {
        let body = format!("request {i}");
        client.ready().await?;
        let response = client
            .send_request(request("POST", "/echo", body.clone())?)
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(body_bytes(response).await?, body.as_bytes());
    }
    assert_eq!(app.connections.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn http1_statuses_pass_through() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.inbound).await?;
    for code in [200u16, 201, 204, 301, 404, 500, 503] {
        client.ready().await?;
        let response = client
            .send_request(request("GET", &format!("/status/{code}"), "")?)
            .await?;
        assert_eq!(response.status().as_u16(), code);
        body_bytes(response).await?;
    }
    Ok(())
}

#[tokio::test]
async fn http1_large_bodies_stream_both_ways() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    let mut big = vec![0u8; 8 * 1024 * 1024];
    run_support::Payload::new(7).fill(&mut big);
    client.ready().await?;
    let response = client
        .send_request(request("POST", "/echo", big.clone())?)
        .await?;
    assert_eq!(sha256(&body_bytes(response).await?), sha256(&big));
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    let req = Request::get("/headers")
        .header("host", "web.test")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("x-end-to-end", "kept")
        .body(Empty::<Bytes>::new())?;
    client.ready().await?;
    let response = client.send_request(req).await?;
    let names = String::from_utf8(body_bytes(response).await?.to_vec())?;
    assert_eq!(names, "host,te,x-end-to-end");
    Ok(())
}

#[tokio::test]
async fn http2_streams_are_multiplexed() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let client = h2_client::<Full<Bytes>>(proxy.outbound).await?;
    // A stream that never answers must not hold up the others.
    let mut hanging = client.clone();
    let hang = tokio::spawn(async move {
        let req = Request::get("http://web.test/hang").body(Full::new(Bytes::new()))?;
        hanging
            .send_request(req)
            .await
            .map_err(|e| e.to_string().into())
            .map(|_| ()) as TestResult
    });
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("stream {i}");
            let req =
                Request::post("http://web.test/echo").body(Full::new(Bytes::from(body.clone())))?;
            client.ready().await?;
            let response = client.send_request(req).await?;
            assert_eq!(response.version(), http::Version::HTTP_2);
            assert_eq!(body_bytes(response).await?, body.as_bytes());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    assert_eq!(app.connections.load(Ordering::SeqCst), 1);
    assert!(!hang.is_finished());
    hang.abort();
    Ok(())
}

#[tokio::test]
async fn grpc_trailers_pass_through() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h2_client::<Full<Bytes>>(proxy.inbound).await?;
    for code in ["0", "14"] {
        let req = Request::post(format!("http://web.test/grpc/{code}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))?;
        client.ready().await?;
        let response = client.send_request(req).await?;
        let collected = response.into_body().collect().await?;
        let trailers = collected.trailers().cloned().ok_or("no trailers")?;
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(code.as_bytes())
        );
        assert_eq!(
            collected.to_bytes(),
            Bytes::from_static(b"\0\0\0\0\x05hello")
        );
    }
    // Trailers-only: the status is in the headers and the stream ends there.
    let req = Request::post("http://web.test/grpc-only/13").body(Full::new(Bytes::new()))?;
    client.ready().await?;
    let response = client.send_request(req).await?;
    assert_eq!(
        response.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"13"[..])
    );
    Ok(())
}

#[tokio::test]
async fn websocket_upgrade_is_spliced() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client::<Empty<Bytes>>(proxy.outbound).await?;
    let req = Request::get("/ws")
        .header("host", "web.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Empty::new())?;
    client.ready().await?;
    let response = client.send_request(req).await?;
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers().get("upgrade").map(|v| v.as_bytes()),
        Some(&b"websocket"[..])
    );
    let mut io = TokioIo::new(hyper::upgrade::on(response).await?);
    for message in [&b"hello"[..], b"\x81\x05frame", &[0u8; 3000]] {
        io.write_all(message).await?;
        let mut echoed = vec![0u8; message.len()];
        io.read_exact(&mut echoed).await?;
        assert_eq!(echoed, message);
    }
    Ok(())
}

#[tokio::test]
async fn dead_upstream_gets_502_and_the_proxy_keeps_serving() -> TestResult {
    let dead = run_support::free_port()?;
    let proxy = start_proxy(dead, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    for _ in 0..3 {
        client.ready().await?;
        let response = client.send_request(request("GET", "/", "")?).await?;
        assert_eq!(response.status(), 502);
        assert!(response.headers().contains_key("weft-proxy-error"));
        let body = body_bytes(response).await?;
        assert!(body.starts_with(b"weft-proxy: "), "{body:?}");
    }
    let mut h2 = h2_client::<Full<Bytes>>(proxy.outbound).await?;
    h2.ready().await?;
    let response = h2
        .send_request(Request::get("http://web.test/").body(Full::new(Bytes::new()))?)
        .await?;
    assert_eq!(response.status(), 502);
    Ok(())
}

#[tokio::test]
async fn upstream_closing_keep_alive_is_reconnected() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    // The server closes its connection after each /close answer; the
    // proxy drops that hop-by-hop `Connection: close`, so the client keeps
    // its connection and the proxy reconnects upstream for the next request.
    for _ in 0..3 {
        client.ready().await?;
        let response = client.send_request(request("GET", "/close", "")?).await?;
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("connection"));
        // No pause: the next request may race the server's close, which
        // the proxy must absorb (retrying a request it never sent).
        body_bytes(response).await?;
    }
    client.ready().await?;
    let response = client
        .send_request(request("GET", "/status/204", "")?)
        .await?;
    assert_eq!(response.status(), 204);
    assert_eq!(app.connections.load(Ordering::SeqCst), 4);
    Ok(())
}
