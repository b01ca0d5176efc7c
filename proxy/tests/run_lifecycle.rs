//! The binary's lifecycle: `/ready`, SIGTERM drains in-flight requests and
//! stops accepting, the grace period bounds the drain, `/shutdown` from
//! loopback ends a Job's proxy, and bad configuration fails fast with the
//! variable's name.

mod run_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use run_support::{
    Binary, TestResult, admin_get, admin_request, body_bytes, h1_client, metric, request, servers,
    wait_metrics,
};
use tokio::net::TcpStream;

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() -> TestResult {
    let app = servers::http_app().await?;
    let mut proxy = Binary::start(app.addr, &[("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "20s")]).await?;
    let mut client = h1_client::<Full<Bytes>>(proxy.inbound).await?;
    let in_flight = tokio::spawn(client.send_request(request("GET", "/sleep/700", "")?));
    // SIGTERM only once the proxy has the request in hand.
    wait_metrics(proxy.admin, |t| metric(t, "request_total", &[]) == 1.0).await?;
    proxy.sigterm()?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Draining: not ready, no longer accepting.
    assert_eq!(admin_get(proxy.admin, "/ready").await?.0, 503);
    assert!(TcpStream::connect(proxy.inbound).await.is_err());
    let response = in_flight.await??;
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await?, "slept 700 ms".as_bytes());
    // Exits once the request is done, well before the 20 s grace period.
    let status = proxy.wait_exit(Duration::from_secs(10)).await?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test]
async fn grace_period_bounds_the_drain() -> TestResult {
    let app = servers::http_app().await?;
    let mut proxy = Binary::start(app.addr, &[("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "1s")]).await?;
    let mut client = h1_client::<Full<Bytes>>(proxy.inbound).await?;
    let hanging = tokio::spawn(client.send_request(request("GET", "/hang", "")?));
    wait_metrics(proxy.admin, |t| metric(t, "request_total", &[]) == 1.0).await?;
    proxy.sigterm()?;
    let status = proxy.wait_exit(Duration::from_secs(10)).await?;
    assert!(status.success(), "{status}");
    // The hanging request ends with the process, as an error.
    assert!(hanging.await?.is_err());
    Ok(())
}

#[tokio::test]
async fn shutdown_endpoint_ends_the_proxy() -> TestResult {
    let app = servers::http_app().await?;
    let mut proxy = Binary::start(app.addr, &[]).await?;
    assert_eq!(admin_get(proxy.admin, "/live").await?.0, 200);
    assert_eq!(admin_get(proxy.admin, "/ready").await?.0, 200);
    assert_eq!(admin_get(proxy.admin, "/shutdown").await?.0, 405);
    assert_eq!(
        admin_request(proxy.admin, "POST", "/shutdown").await?.0,
        200
    );
    let status = proxy.wait_exit(Duration::from_secs(10)).await?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn bad_configuration_names_the_variable() -> TestResult {
    let output = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("run")
        .env_clear()
        .env("WEFT_PROXY_OPAQUE_PORTS", "3306,mysql")
        .stdin(Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("WEFT_PROXY_OPAQUE_PORTS"), "{stderr}");
    Ok(())
}

#[test]
fn busy_port_is_a_clear_error() -> TestResult {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("run")
        .env_clear()
        .env("WEFT_PROXY_INBOUND_LISTEN_ADDR", "127.0.0.1:0")
        .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", &addr)
        .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("WEFT_PROXY_OUTBOUND_LISTEN_ADDR") && stderr.contains(&addr),
        "{stderr}"
    );
    Ok(())
}
