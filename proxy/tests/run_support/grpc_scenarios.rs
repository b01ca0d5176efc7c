//! gRPC streaming scenarios a client plays against [`super::grpc_app`]
//! through the proxy (one proxy on loopback, or two between network
//! namespaces): server, client and bidirectional streams ending in
//! `grpc-status` 0 or a failing status after their messages, a stream the
//! server resets midway, and one the client cancels midway. All run at once
//! on one HTTP/2 connection, as multiplexed streams.
//!
//! Streaming is proven, not assumed: the bidirectional scenario sends each
//! message only after the previous echo came back, and the `Endless` stream
//! never ends; a proxy that buffered a body in either direction would stall
//! them (and the test time out).

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::client::conn::http2;

use super::TestResult;
use super::grpc::{self, BodySender, ChannelBody, Messages, Next};
use super::grpc_app::{Events, PREFIX, Summary, payload};

/// A client HTTP/2 connection whose request bodies are written as they go.
pub type H2 = http2::SendRequest<ChannelBody>;

/// How long one step (a message, an echo, a status) may take.
const STEP: Duration = Duration::from_secs(20);

/// The `response_total` a proxy on the path must show after [`run_all`]:
/// (`grpc_status`, `classification`, count).
pub const EXPECTED: [(&str, &str, u64); 6] = [
    ("0", "success", 4),
    ("5", "success", 1),
    ("14", "failure", 1),
    ("13", "failure", 1),
    ("4", "failure", 1),
    // The reset and the cancelled stream: no status, failed.
    ("", "failure", 2),
];

/// Requests [`run_all`] makes.
pub const REQUESTS: u64 = 10;

/// Runs every scenario concurrently on `h2`.
pub async fn run_all(h2: &H2, events: Arc<Events>) -> TestResult {
    let mut tasks = tokio::task::JoinSet::new();
    let h = h2.clone();
    tasks.spawn(async move { server_stream(&h, 5, 1_000, "0").await });
    // Larger than the default HTTP/2 windows: flow control on the way.
    let h = h2.clone();
    tasks.spawn(async move { server_stream(&h, 4, 300_000, "0").await });
    let h = h2.clone();
    tasks.spawn(async move { server_stream(&h, 2, 10, "5").await });
    let h = h2.clone();
    tasks.spawn(async move { server_stream(&h, 5, 100, "14").await });
    let h = h2.clone();
    tasks.spawn(async move {
        let sizes: Vec<usize> = (0..40).map(|i| (i * 997) % 5_000).collect();
        client_stream(&h, &sizes, "0").await
    });
    let h = h2.clone();
    tasks.spawn(async move { client_stream(&h, &[10, 20, 30], "13").await });
    let h = h2.clone();
    tasks.spawn(async move { bidi(&h, 20, "0").await });
    let h = h2.clone();
    tasks.spawn(async move { bidi(&h, 3, "4").await });
    let h = h2.clone();
    tasks.spawn(async move { server_reset(&h).await });
    let h = h2.clone();
    tasks.spawn(async move { client_cancel(&h, &events).await });
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Starts a call: its request body's writer and its response's messages.
async fn call(h2: &H2, route: &str) -> TestResult<(BodySender, Messages)> {
    let (tx, body) = grpc::channel();
    let req = Request::post(format!("http://grpc.test{PREFIX}{route}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)?;
    let mut h2 = h2.clone();
    let response = step(route, async {
        h2.ready().await?;
        Ok(h2.send_request(req).await?)
    })
    .await?;
    if response.status() != 200 {
        return Err(format!("{route}: status {}", response.status()).into());
    }
    Ok((tx, Messages::new(response.into_body())))
}

async fn step<T>(what: &str, future: impl Future<Output = TestResult<T>>) -> TestResult<T> {
    match tokio::time::timeout(STEP, future).await {
        Ok(result) => result.map_err(|e| format!("{what}: {e}").into()),
        Err(_) => Err(format!("{what}: no progress in {STEP:?}").into()),
    }
}

/// One request message, then `n` response messages and `code`.
pub async fn server_stream(h2: &H2, n: u64, size: usize, code: &str) -> TestResult {
    let route = format!("Server/{n}/{size}/{code}");
    let (tx, mut rx) = call(h2, &route).await?;
    tx.message(b"send them").await?;
    drop(tx);
    for i in 0..n {
        let message = step(&route, rx.message()).await?;
        if message != payload(i, size) {
            return Err(format!("{route}: message {i} differs").into());
        }
    }
    let status = step(&route, rx.status()).await?;
    assert_eq!(status, code, "{route}");
    Ok(())
}

/// Messages of `sizes`, then one summary of them back and `code`.
pub async fn client_stream(h2: &H2, sizes: &[usize], code: &str) -> TestResult {
    let route = format!("Client/{code}");
    let (tx, mut rx) = call(h2, &route).await?;
    let sent: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| payload(1_000 + i as u64, *size))
        .collect();
    for message in &sent {
        tx.message(message).await?;
    }
    drop(tx);
    let summary = Summary::decode(&step(&route, rx.message()).await?)?;
    assert_eq!(summary, Summary::of(sent.iter().map(|m| &m[..])), "{route}");
    let status = step(&route, rx.status()).await?;
    assert_eq!(status, code, "{route}");
    Ok(())
}

/// `rounds` messages, each sent only once the previous one came back.
pub async fn bidi(h2: &H2, rounds: u64, code: &str) -> TestResult {
    let route = format!("Bidi/{code}");
    let (tx, mut rx) = call(h2, &route).await?;
    for i in 0..rounds {
        let message = payload(2_000 + i, 1 + (i as usize * 331) % 3_000);
        tx.message(&message).await?;
        let echo = step(&format!("{route} echo {i}"), rx.message()).await?;
        assert_eq!(echo, message, "{route}: echo {i}");
    }
    drop(tx);
    let status = step(&route, rx.status()).await?;
    assert_eq!(status, code, "{route}");
    Ok(())
}

/// Three messages, then the server resets: the client sees them, then the
/// reset (not a clean end).
pub async fn server_reset(h2: &H2) -> TestResult {
    let (tx, mut rx) = call(h2, "ResetAfter/3").await?;
    tx.message(b"go").await?;
    for i in 0..3 {
        assert_eq!(step("ResetAfter", rx.message()).await?, payload(i, 100));
    }
    tx.message(b"now reset").await?;
    match tokio::time::timeout(STEP, rx.next()).await? {
        Err(_) => Ok(()),
        Ok(Next::End(trailers)) => {
            Err(format!("the reset arrived as a clean end ({trailers:?})").into())
        }
        Ok(Next::Message(m)) => Err(format!("a {}-byte message after the reset", m.len()).into()),
    }
}

/// A stream that never ends: three messages, then the client goes away,
/// and the server must hear it.
pub async fn client_cancel(h2: &H2, events: &Events) -> TestResult {
    let (tx, mut rx) = call(h2, "Endless").await?;
    for i in 0..3 {
        assert_eq!(step("Endless", rx.message()).await?, payload(i, 64));
    }
    drop(rx);
    drop(tx);
    events.wait_cancelled(1, STEP).await
}
