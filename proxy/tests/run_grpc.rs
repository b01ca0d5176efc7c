//! gRPC streaming through the proxy on loopback: server, client and
//! bidirectional streams with trailers (`grpc-status` 0 and failing statuses
//! after streamed messages), a stream the server resets and one the client
//! cancels, multiplexed on one HTTP/2 connection; and the metrics count
//! each response with its gRPC status and classification, exactly.

mod run_support;

use run_support::grpc::ChannelBody;
use run_support::grpc_scenarios::{self, EXPECTED, REQUESTS};
use run_support::{TestResult, h2_client, metric, servers, start_proxy, wait_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_cross_the_proxy_with_trailers_and_resets() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let h2 = h2_client::<ChannelBody>(proxy.inbound).await?;
    grpc_scenarios::run_all(&h2, app.grpc.clone()).await?;

    let text = wait_metrics(proxy.admin, |t| {
        metric(t, "response_total", &[]) == REQUESTS as f64
    })
    .await?;
    let inbound = [("direction", "inbound"), ("authority", "grpc.test")];
    assert_eq!(metric(&text, "request_total", &inbound), REQUESTS as f64);
    for (grpc_status, classification, count) in EXPECTED {
        let labels = [
            ("direction", "inbound"),
            ("grpc_status", grpc_status),
            ("classification", classification),
        ];
        assert_eq!(
            metric(&text, "response_total", &labels),
            count as f64,
            "grpc_status={grpc_status:?} {classification}\n{text}"
        );
    }
    // One client connection, one upstream connection, for all ten streams.
    assert_eq!(app.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    Ok(())
}
