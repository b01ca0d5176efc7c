//! Golden metrics count exactly what was sent: requests, responses by
//! classification, status and gRPC status, latency observations, and TCP
//! connections, per direction.

mod run_support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use run_support::{
    TestResult, body_bytes, h1_client, h2_client, metric, request, servers, start_proxy,
    wait_metrics,
};

#[tokio::test]
async fn http1_requests_and_failures_are_counted_exactly() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h1_client(proxy.outbound).await?;
    let plan = [(200u16, 10), (503, 3), (404, 2), (500, 1)];
    for (code, times) in plan {
        for _ in 0..times {
            client.ready().await?;
            let response = client
                .send_request(request("GET", &format!("/status/{code}"), "")?)
                .await?;
            assert_eq!(response.status().as_u16(), code);
            body_bytes(response).await?;
        }
    }
    let out = [("direction", "outbound")];
    let text = wait_metrics(proxy.admin, |t| metric(t, "response_total", &out) == 16.0).await?;
    assert_eq!(
        metric(
            &text,
            "request_total",
            &[("direction", "outbound"), ("authority", "web.test:8080")]
        ),
        16.0
    );
    assert_eq!(
        metric(&text, "request_total", &[("direction", "inbound")]),
        0.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("classification", "success")]),
        12.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("classification", "failure")]),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("status_code", "503"), ("classification", "failure")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("status_code", "404"), ("classification", "success")]
        ),
        2.0
    );
    assert_eq!(metric(&text, "response_latency_ms_count", &out), 16.0);
    assert_eq!(metric(&text, "tcp_open_total", &out), 1.0);
    assert_eq!(metric(&text, "tcp_open_connections", &out), 1.0);
    assert!(metric(&text, "tcp_read_bytes_total", &out) > 0.0);
    assert!(metric(&text, "tcp_write_bytes_total", &out) > 0.0);
    drop(client);
    wait_metrics(proxy.admin, |t| {
        metric(t, "tcp_close_total", &out) == 1.0 && metric(t, "tcp_open_connections", &out) == 0.0
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn grpc_statuses_classify_responses() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    let mut client = h2_client::<Full<Bytes>>(proxy.inbound).await?;
    // (path, times): Unavailable and DeadlineExceeded fail, InvalidArgument
    // is the caller's fault and counts as success.
    let plan = [
        ("/grpc/0", 4),
        ("/grpc/14", 2),
        ("/grpc/3", 1),
        ("/grpc-only/4", 1),
    ];
    for (path, times) in plan {
        for _ in 0..times {
            let req = Request::post(format!("http://grpc.test{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))?;
            client.ready().await?;
            let response = client.send_request(req).await?;
            response.into_body().collect().await?;
        }
    }
    let inbound = [("direction", "inbound")];
    let text = wait_metrics(proxy.admin, |t| {
        metric(t, "response_total", &inbound) == 8.0
    })
    .await?;
    assert_eq!(
        metric(
            &text,
            "request_total",
            &[("direction", "inbound"), ("authority", "grpc.test")]
        ),
        8.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("classification", "success")]),
        5.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("classification", "failure")]),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("grpc_status", "14"), ("classification", "failure")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("grpc_status", "4"), ("classification", "failure")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("grpc_status", "3"), ("classification", "success")]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "response_total", &[("status_code", "200")]),
        8.0
    );
    Ok(())
}

#[tokio::test]
async fn resets_and_dead_upstreams_are_failures() -> TestResult {
    let app = servers::http_app().await?;
    let proxy = start_proxy(app.addr, &[]).await?;
    // The upstream fails mid-body: the client sees an error, the proxy a reset.
    let mut client = h2_client::<Full<Bytes>>(proxy.outbound).await?;
    client.ready().await?;
    let response = client
        .send_request(Request::get("http://web.test/abort").body(Full::new(Bytes::new()))?)
        .await?;
    assert!(response.into_body().collect().await.is_err());
    let text = wait_metrics(proxy.admin, |t| metric(t, "response_total", &[]) == 1.0).await?;
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("status_code", "200"), ("classification", "failure")]
        ),
        1.0
    );

    let dead = run_support::free_port()?;
    let proxy = start_proxy(dead, &[]).await?;
    let mut client = h1_client(proxy.inbound).await?;
    for _ in 0..2 {
        client.ready().await?;
        let response = client.send_request(request("GET", "/", "")?).await?;
        body_bytes(response).await?;
    }
    let text = wait_metrics(proxy.admin, |t| metric(t, "response_total", &[]) == 2.0).await?;
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("status_code", "502"), ("classification", "failure")]
        ),
        2.0
    );
    Ok(())
}
