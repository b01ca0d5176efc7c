//! gRPC streaming between two meshed "pods" of the rig (see
//! `run_support::mesh`): the scenarios of `run_grpc` (server, client and
//! bidirectional streams with trailers and failing statuses, a server reset
//! and a client cancel mid-stream) through the client pod's outbound proxy
//! and the server pod's inbound proxy, and both proxies count every
//! response with its gRPC status and classification (needs root).

mod run_support;

use hyper_util::rt::{TokioExecutor, TokioIo};
use run_support::grpc_scenarios::{self, EXPECTED, REQUESTS};
use run_support::mesh::{HTTP_PORT, at, connect_from, mesh, wait_metric};
use run_support::{TestResult, metric};
use weft_testrig::Rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_cross_two_proxies_and_both_count_them() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = mesh(&rig).await?;
    let stream = connect_from(&m.client, at(m.server.ip(), HTTP_PORT)).await?;
    let (h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    grpc_scenarios::run_all(&h2, m.app.grpc.clone()).await?;

    for (pod, direction) in [(&m.client, "outbound"), (&m.server, "inbound")] {
        let d = [("direction", direction)];
        let text = wait_metric(pod, |t| metric(t, "response_total", &d) == REQUESTS as f64).await?;
        let requests = [("direction", direction), ("authority", "grpc.test")];
        assert_eq!(metric(&text, "request_total", &requests), REQUESTS as f64);
        for (grpc_status, classification, count) in EXPECTED {
            let labels = [
                ("direction", direction),
                ("grpc_status", grpc_status),
                ("classification", classification),
            ];
            assert_eq!(
                metric(&text, "response_total", &labels),
                count as f64,
                "{direction} grpc_status={grpc_status:?} {classification}\n{text}"
            );
        }
    }
    Ok(())
}
