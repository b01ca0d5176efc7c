//! Opaque TCP through the proxy (in-process, loopback, fixed target):
//! byte-exact payloads both ways, half-close, server-speaks-first, opaque
//! ports, the application's TLS passed through.

mod run_support;

use std::time::Duration;

use run_support::{
    TestResult, hash_to_eof, metric, send_payload, servers, start_proxy, wait_metrics,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `up` bytes and receives `down` bytes over one proxied connection,
/// both at once, and checks both directions' SHA-256.
async fn exchange(
    proxy: std::net::SocketAddr,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<servers::Received>,
    seed: u64,
    up: usize,
    down: usize,
) -> TestResult {
    let stream = TcpStream::connect(proxy).await?;
    let (mut read, mut write) = stream.into_split();
    let down_seed = seed ^ 0xABCD;
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(&down_seed.to_le_bytes());
    header[8..].copy_from_slice(&(down as u64).to_le_bytes());
    write.write_all(&header).await?;
    let sender = tokio::spawn(async move {
        send_payload(&mut write, seed, up)
            .await
            .map_err(|e| e.to_string())
    });
    let (got, got_hash) = hash_to_eof(&mut read).await?;
    let sent_hash = sender.await??;
    let received = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await?
        .ok_or("server gone")?;
    assert_eq!(
        (received.len, received.sha256),
        (up, sent_hash),
        "client to server, {up} bytes"
    );
    // The expected download: what send_payload would produce from down_seed.
    let mut sink = tokio::io::sink();
    let expected = send_payload(&mut sink, down_seed, down).await?;
    assert_eq!(
        (got, got_hash),
        (down, expected),
        "server to client, {down} bytes"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_payloads_are_byte_exact_both_ways() -> TestResult {
    let (server, mut rx) = servers::exchange_server().await?;
    let proxy = start_proxy(server, &[]).await?;
    let sizes = [
        (0, 0),
        (1, 7),
        (100, 3),
        (65_537, 1_000_003),
        (1_048_576, 1_048_576),
        (100 * 1024 * 1024, 100 * 1024 * 1024),
    ];
    for (i, (up, down)) in sizes.into_iter().enumerate() {
        exchange(proxy.outbound, &mut rx, i as u64 + 1, up, down).await?;
    }
    Ok(())
}

#[tokio::test]
async fn half_close_keeps_the_way_back_open() -> TestResult {
    let server = servers::after_eof_server().await?;
    let proxy = start_proxy(server, &[]).await?;
    let mut stream = TcpStream::connect(proxy.inbound).await?;
    stream.write_all(b"\x00binary request").await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert_eq!(answer, "got 15 bytes\n");
    Ok(())
}

#[tokio::test]
async fn server_speaks_first_without_waiting_for_detection() -> TestResult {
    let greeting = b"220 mail.test ESMTP ready\r\n";
    let server = servers::greeting_server(greeting).await?;
    let proxy = start_proxy(server, &[]).await?;
    let start = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(proxy.outbound).await?;
    let mut got = vec![0u8; greeting.len()];
    stream.read_exact(&mut got).await?;
    // Printed, not asserted: timing belongs in benchmarks.
    println!("server greeting after {:?}", start.elapsed());
    assert_eq!(got, greeting);
    stream.write_all(b"EHLO client.test\r\n").await?;
    let mut echo = vec![0u8; 18];
    stream.read_exact(&mut echo).await?;
    assert_eq!(echo, b"EHLO client.test\r\n");
    Ok(())
}

#[tokio::test]
async fn a_client_that_writes_late_still_gets_http() -> TestResult {
    // Nobody speaks for longer than the short detection timeout: nothing is
    // held back meanwhile, so detection keeps waiting and still finds HTTP.
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut stream = TcpStream::connect(proxy.outbound).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream
        .write_all(b"GET /status/200 HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let text = wait_metrics(proxy.admin, |t| metric(t, "response_total", &[]) == 1.0).await?;
    assert_eq!(metric(&text, "request_total", &[("authority", "web")]), 1.0);
    Ok(())
}

#[tokio::test]
async fn opaque_ports_skip_detection() -> TestResult {
    let app = servers::http_app().await?;
    let port = app.addr.port().to_string();
    let proxy = start_proxy(app.addr, &[("WEFT_PROXY_OPAQUE_PORTS", &port)]).await?;
    let mut stream = TcpStream::connect(proxy.outbound).await?;
    stream
        .write_all(b"GET /status/201 HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // The server closed; our write half stays open (half-close) until we go.
    drop(stream);
    // Forwarded as bytes: counted as a connection, never as a request.
    let port = port.as_str();
    let text = wait_metrics(proxy.admin, |t| {
        metric(t, "tcp_close_total", &[("dst_port", port)]) == 1.0
    })
    .await?;
    assert_eq!(metric(&text, "request_total", &[]), 0.0);
    Ok(())
}

#[tokio::test]
async fn application_tls_is_passed_through() -> TestResult {
    let (server, mut rx) = servers::exchange_server().await?;
    let proxy = start_proxy(server, &[]).await?;
    let mut stream = TcpStream::connect(proxy.inbound).await?;
    // A TLS handshake record header (0x16 0x03 0x01) opens the exchange
    // header's seed, so detection sees a ClientHello.
    let seed = u64::from_le_bytes([0x16, 0x03, 0x01, 0x00, 0x2a, 0, 0, 0]);
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(&seed.to_le_bytes());
    header[8..].copy_from_slice(&1000u64.to_le_bytes());
    stream.write_all(&header).await?;
    stream.write_all(b"client hello body").await?;
    stream.shutdown().await?;
    let (got, _) = hash_to_eof(&mut stream).await?;
    assert_eq!(got, 1000);
    let received = rx.recv().await.ok_or("server gone")?;
    assert_eq!(received.len, 17);
    let text = wait_metrics(proxy.admin, |t| {
        metric(t, "tcp_close_total", &[("tls", "passthrough")]) == 1.0
    })
    .await?;
    assert_eq!(
        metric(&text, "tcp_read_bytes_total", &[("tls", "passthrough")]),
        33.0
    );
    assert_eq!(
        metric(&text, "tcp_write_bytes_total", &[("tls", "passthrough")]),
        1000.0
    );
    Ok(())
}

#[tokio::test]
async fn refused_upstream_resets_the_client() -> TestResult {
    let dead = run_support::free_port()?;
    let proxy = start_proxy(
        dead,
        &[("WEFT_PROXY_OPAQUE_PORTS", &dead.port().to_string())],
    )
    .await?;
    let mut stream = TcpStream::connect(proxy.outbound).await?;
    let mut buf = [0u8; 16];
    match stream.read(&mut buf).await {
        Ok(0) => Err("expected a reset, got a clean close".into()),
        Ok(n) => Err(format!("expected a reset, got {n} bytes").into()),
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            Ok(())
        }
    }
}
