//! Two meshed "pods" of the rig talking mutual TLS through real iptables
//! redirects (`weft-proxy init`) and proxies running as UID 2102, certified
//! by the stand-in control plane of `mtls_support`, which runs in a third
//! pod. A capture on the client pod's veth (taken in the bridge's
//! namespace, so it sees exactly what crosses the "network") shows the mesh
//! request's path and body nowhere, while a plaintext request to an
//! unmeshed port shows up in the same capture. Needs root and tcpdump
//! (`apt-get install tcpdump`); `WEFT_SKIP_ROOT_TESTS=1` skips it when not
//! root.

mod mtls_support;
mod run_support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mtls_support::{ControlPlane, Pki, id, meshed};
use run_support::{TestResult, metric, servers};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use weft_testrig::capture::contains;
use weft_testrig::{Capture, Pod, PodProcess, Rig};

const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");
const PROXY_UID: u32 = 2102;
const MESHED_PORT: u16 = 8080;
const PLAIN_PORT: u16 = 9090;
const CONTROL_PORT: u16 = 8080;
const ADMIN_PORT: u16 = 4191;
/// Only ever sent inside mesh TLS.
const SECRET_PATH: &str = "/status/200?weft-secret-path-7f3a";
const SECRET_BODY: &str = "weft-secret-body-91c2";
/// Sent in plaintext, to prove the capture would show a leak.
const PLAIN_MARKER: &str = "/status/200?weft-plaintext-control-5d1e";

fn at(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn init(pod: &Pod<'_>) -> TestResult {
    let out = pod.command(BIN).arg("init").output()?;
    if !out.status.success() {
        return Err(format!("init failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// `weft-proxy run` in `pod` as the proxy user, with the injector's env for
/// ServiceAccount `sa`; its token in `dir` (readable by the proxy user).
fn start_proxy(
    pod: &Pod<'_>,
    control: &ControlPlane,
    sa: &str,
    dir: &Path,
) -> TestResult<PodProcess> {
    let token_file = dir.join(format!("{sa}.token"));
    let token = format!("token-{sa}");
    control.grant(&token, sa);
    std::fs::write(&token_file, token)?;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644))?;
    let mut cmd = pod.command_as(PROXY_UID, BIN);
    cmd.arg("run")
        .env_clear()
        .env("WEFT_PROXY_LOG", "warn")
        .env("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "2s")
        .env("WEFT_PROXY_POD_IP", pod.ip().to_string())
        .envs(control.mesh_env(sa, &token_file));
    Ok(pod.spawn(cmd)?)
}

async fn connect_from(pod: &Pod<'_>, to: SocketAddr) -> TestResult<TcpStream> {
    let socket = pod.in_netns(TcpSocket::new_v4)??;
    Ok(tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await??)
}

fn listen_in(pod: &Pod<'_>, ip: Ipv4Addr, port: u16) -> TestResult<TcpListener> {
    let listener = pod.in_netns(|| std::net::TcpListener::bind((ip, port)))??;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// One HTTP/1 request from inside `pod`, as its application would send it.
async fn get(
    pod: &Pod<'_>,
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> TestResult<(u16, Bytes)> {
    let stream = connect_from(pod, to).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "server.rig")
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

async fn admin(pod: &Pod<'_>, path: &str) -> TestResult<(u16, String)> {
    let (status, body) = get(pod, at(Ipv4Addr::LOCALHOST, ADMIN_PORT), "GET", path, "").await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn wait_ready(pod: &Pod<'_>) -> TestResult {
    for _ in 0..300 {
        if let Ok((200, _)) = admin(pod, "/ready").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("proxy in {} never became ready", pod.name()).into())
}

async fn wait_metric(pod: &Pod<'_>, check: impl Fn(&str) -> bool) -> TestResult<String> {
    let mut last = String::new();
    for _ in 0..100 {
        let (_, text) = admin(pod, "/metrics").await?;
        if check(&text) {
            return Ok(text);
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("metrics of {} never matched:\n{last}", pod.name()).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meshed_pods_talk_mutual_tls_and_the_wire_shows_no_plaintext() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let control_pod = rig.pod("control")?;
    let client = rig.pod("client")?;
    let server = rig.pod("server")?;
    init(&client)?;
    init(&server)?;

    let pki = Pki::new("rig mesh anchor")?;
    let control = ControlPlane::serve_on(
        &pki,
        listen_in(&control_pod, control_pod.ip(), CONTROL_PORT)?,
    )?;
    let meshed_addr = at(server.ip(), MESHED_PORT);
    control.answer(meshed_addr, meshed(meshed_addr, "server", "server-0"));
    servers::http_app_on(listen_in(&server, Ipv4Addr::UNSPECIFIED, MESHED_PORT)?)?;
    servers::http_app_on(listen_in(&server, Ipv4Addr::UNSPECIFIED, PLAIN_PORT)?)?;

    // The client pod's end of its veth, as seen from the bridge.
    let capture_dir = tempfile::tempdir()?;
    let capture_file = capture_dir.path().join("client-veth.pcap");
    let capture = Capture::start(rig.bridge_netns(), &client.bridge_port(), &capture_file)?;

    let token_dir = tempfile::tempdir()?;
    std::fs::set_permissions(token_dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let _proxies = [
        start_proxy(&client, &control, "client", token_dir.path())?,
        start_proxy(&server, &control, "server", token_dir.path())?,
    ];
    wait_ready(&client).await?;
    wait_ready(&server).await?;
    let (status, _) = get(&client, meshed_addr, "GET", SECRET_PATH, "").await?;
    assert_eq!(status, 200);
    let (status, echoed) = get(&client, meshed_addr, "POST", "/echo", SECRET_BODY).await?;
    assert_eq!((status, &echoed[..]), (200, SECRET_BODY.as_bytes()));
    let (status, _) = get(
        &client,
        at(server.ip(), PLAIN_PORT),
        "GET",
        PLAIN_MARKER,
        "",
    )
    .await?;
    assert_eq!(status, 200);

    // Both sides name each other.
    let (server_id, client_id) = (id("server"), id("client"));
    wait_metric(&client, |t| {
        metric(
            t,
            "response_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &server_id),
                ("dst_pod", "server-0"),
                ("dst_port", "8080"),
            ],
        ) == 2.0
            && metric(
                t,
                "response_total",
                &[("tls", "false"), ("dst_port", "9090")],
            ) == 1.0
    })
    .await?;
    wait_metric(&server, |t| {
        metric(
            t,
            "response_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", &client_id),
                ("dst_port", "8080"),
            ],
        ) == 2.0
            && metric(
                t,
                "response_total",
                &[("tls", "false"), ("dst_port", "9090")],
            ) == 1.0
    })
    .await?;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let wire = capture.finish()?;
    assert!(
        contains(&wire, PLAIN_MARKER),
        "the capture does not show the plaintext control request ({} bytes): it proves nothing",
        wire.len()
    );
    assert!(
        contains(
            &wire,
            "server.shop.serviceaccount.identity.weft.cluster.local"
        ),
        "no mesh ClientHello (SNI) in the capture"
    );
    assert!(
        !contains(&wire, "weft-secret-path"),
        "the mesh request's path crossed in plaintext"
    );
    assert!(
        !contains(&wire, SECRET_BODY),
        "the mesh request's body crossed in plaintext"
    );
    Ok(())
}
