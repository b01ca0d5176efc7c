//! `weft-proxy init` against real iptables, in rig pods (needs root; CI runs
//! as root, `WEFT_SKIP_ROOT_TESTS=1` skips elsewhere).
//!
//! Each test builds an "app" pod where init runs and a "peer" pod beside it.
//! Stand-ins for the proxy listen on 4143 and 4140 and answer each
//! connection with the address the client really dialled (SO_ORIGINAL_DST,
//! through `weft_proxy::orig_dst`); plain servers answer with their name. A
//! client reads one line, so every answer says who got the connection.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Output;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::timeout;
use weft_proxy::orig_dst::original_dst;
use weft_testrig::{Pod, Rig, RigError};

const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");
const PROXY_UID: u32 = 2102;
const APP_PORT: u16 = 8080;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs the real binary in `pod` as root with `args` after `init`.
fn init(pod: &Pod<'_>, args: &[&str]) -> Result<Output, RigError> {
    let mut cmd = pod.command(BIN);
    cmd.arg("init").args(args);
    cmd.output().map_err(|source| RigError::Spawn {
        command: format!("{BIN} init {}", args.join(" ")),
        source,
    })
}

/// Like [`init`], failing the test unless it exits 0.
fn init_ok(pod: &Pod<'_>, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = init(pod, args)?;
    if !out.status.success() {
        return Err(format!(
            "weft-proxy init {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pod's `nat` table without the timestamp comments, for comparisons.
fn nat_rules(pod: &Pod<'_>, save: &str) -> Result<String, RigError> {
    let saved = pod.run(&[save, "-t", "nat"])?;
    Ok(saved
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// A listener bound inside `pod`, driven by the test's runtime.
fn listen(pod: &Pod<'_>, port: u16) -> Result<TcpListener, Box<dyn std::error::Error>> {
    let std_listener = pod.in_netns(|| std::net::TcpListener::bind(("0.0.0.0", port)))??;
    std_listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std_listener)?)
}

/// A stand-in for the proxy: answers `<name> orig=<original destination>`.
fn fake_proxy(pod: &Pod<'_>, port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = listen(pod, port)?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let orig = match original_dst(&conn) {
                Ok(addr) => addr.to_string(),
                Err(e) => format!("error({e})"),
            };
            let _ = conn
                .write_all(format!("proxy:{port} orig={orig}\n").as_bytes())
                .await;
        }
    });
    Ok(())
}

/// A plain server: answers `<name>`.
fn server(pod: &Pod<'_>, port: u16, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = listen(pod, port)?;
    let line = format!("{name}\n");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(line.as_bytes()).await;
        }
    });
    Ok(())
}

/// Connects from `pod` (as root) to `to` and returns the line it answers.
async fn ask(pod: &Pod<'_>, to: SocketAddr) -> Result<String, Box<dyn std::error::Error>> {
    // Only the socket is made inside the pod; connecting and reading run
    // on the test's runtime like any other socket.
    let socket = pod.in_netns(TcpSocket::new_v4)??;
    let mut stream = timeout(IO_TIMEOUT, socket.connect(to)).await??;
    let mut answer = String::new();
    timeout(IO_TIMEOUT, stream.read_to_string(&mut answer)).await??;
    Ok(answer.trim_end().to_owned())
}

/// Connects from `pod` as `uid` (a separate process, so the socket belongs
/// to that user, which is what `-m owner` looks at) and returns the answer.
async fn ask_as(
    pod: &Pod<'_>,
    uid: u32,
    to: SocketAddr,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut cmd = pod.command_as(uid, "bash");
    cmd.args([
        "-c",
        &format!("exec 3<>/dev/tcp/{}/{} && cat <&3", to.ip(), to.port()),
    ]);
    let out = timeout(IO_TIMEOUT, tokio::process::Command::from(cmd).output()).await??;
    if !out.status.success() {
        return Err(format!(
            "client as uid {uid} to {to} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

fn at(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// The two-pod setup most tests share: init ran in `app` with `args`,
/// stand-ins on 4143/4140 there, servers on both pods.
struct Meshed<'rig> {
    app: Pod<'rig>,
    peer: Pod<'rig>,
}

fn meshed<'rig>(rig: &'rig Rig, args: &[&str]) -> Result<Meshed<'rig>, Box<dyn std::error::Error>> {
    let app = rig.pod("app")?;
    let peer = rig.pod("peer")?;
    init_ok(&app, args)?;
    fake_proxy(&app, 4143)?;
    fake_proxy(&app, 4140)?;
    for port in [APP_PORT, 9000, 4191, 4190] {
        server(&app, port, &format!("app:{port}"))?;
    }
    for port in [APP_PORT, 3306] {
        server(&peer, port, &format!("peer:{port}"))?;
    }
    Ok(Meshed { app, peer })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_tcp_goes_to_4143_except_admin_tap_and_skipped_ports() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &["--skip-inbound-ports=9000"])?;
    let app = m.app.ip();

    assert_eq!(
        ask(&m.peer, at(app, APP_PORT)).await?,
        format!("proxy:4143 orig={app}:{APP_PORT}")
    );
    assert_eq!(ask(&m.peer, at(app, 9000)).await?, "app:9000");
    assert_eq!(ask(&m.peer, at(app, 4191)).await?, "app:4191");
    assert_eq!(ask(&m.peer, at(app, 4190)).await?, "app:4190");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tcp_goes_to_4140_except_skipped_ports() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &["--skip-outbound-ports=3306"])?;
    let peer = m.peer.ip();

    assert_eq!(
        ask(&m.app, at(peer, APP_PORT)).await?,
        format!("proxy:4140 orig={peer}:{APP_PORT}")
    );
    assert_eq!(ask(&m.app, at(peer, 3306)).await?, "peer:3306");
    // The peer pod has no rules: its traffic to the app's skipped-outbound
    // port number is not affected by the app's outbound skip list.
    assert_eq!(
        ask(&m.peer, at(m.app.ip(), APP_PORT)).await?,
        format!("proxy:4143 orig={}:{APP_PORT}", m.app.ip())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_uid_is_not_redirected_and_other_users_are() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &[])?;
    let peer = m.peer.ip();

    assert_eq!(
        ask_as(&m.app, PROXY_UID, at(peer, APP_PORT)).await?,
        "peer:8080"
    );
    assert_eq!(
        ask_as(&m.app, 1000, at(peer, APP_PORT)).await?,
        format!("proxy:4140 orig={peer}:{APP_PORT}")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_the_pods_own_ip_are_not_redirected() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &[])?;

    assert_eq!(
        ask(&m.app, at(Ipv4Addr::LOCALHOST, APP_PORT)).await?,
        "app:8080"
    );
    // The app calling itself by pod IP leaves through `lo`: no loop through
    // the outbound proxy, and no detour through the inbound one.
    assert_eq!(ask(&m.app, at(m.app.ip(), APP_PORT)).await?, "app:8080");
    assert_eq!(
        ask_as(&m.app, 1000, at(m.app.ip(), APP_PORT)).await?,
        "app:8080"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_init_is_idempotent_and_follows_new_flags() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("app")?;
    let args = [
        "--skip-inbound-ports=25,8000-8100",
        "--skip-outbound-ports=3306",
    ];

    init_ok(&pod, &args)?;
    let first = nat_rules(&pod, "iptables-nft-save")?;
    init_ok(&pod, &args)?;
    let second = nat_rules(&pod, "iptables-nft-save")?;
    pretty_assertions::assert_eq!(first, second);
    assert_eq!(first.matches("-j WEFT_INBOUND").count(), 1, "{first}");
    assert_eq!(first.matches("-j WEFT_OUTBOUND").count(), 1, "{first}");

    // A restarted init container with other flags replaces the rules.
    init_ok(&pod, &["--skip-inbound-ports=9090"])?;
    let changed = nat_rules(&pod, "iptables-nft-save")?;
    assert!(changed.contains("--dport 9090"), "{changed}");
    assert!(!changed.contains("--dport 25 "), "{changed}");
    assert!(!changed.contains("--dport 3306"), "{changed}");
    assert_eq!(changed.matches("-j WEFT_INBOUND").count(), 1, "{changed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_repairs_duplicated_jumps_and_keeps_foreign_rules() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("app")?;
    init_ok(&pod, &[])?;
    let clean = nat_rules(&pod, "iptables-nft-save")?;
    // Someone duplicated our jump and added a rule of their own.
    for rule in [
        "-A PREROUTING -p tcp -m comment --comment weft/inbound -j WEFT_INBOUND",
        "-A OUTPUT -j WEFT_OUTBOUND",
        "-A OUTPUT -p udp -j ACCEPT",
    ] {
        let mut args = vec!["iptables-nft", "-t", "nat"];
        args.extend(rule.split(' '));
        pod.run(&args)?;
    }
    init_ok(&pod, &[])?;
    let repaired = nat_rules(&pod, "iptables-nft-save")?;
    let without_foreign: String = repaired
        .lines()
        .filter(|l| *l != "-A OUTPUT -p udp -j ACCEPT")
        .map(|l| format!("{l}\n"))
        .collect();
    pretty_assertions::assert_eq!(clean, without_foreign);
    assert!(
        repaired.contains("-A OUTPUT -p udp -j ACCEPT"),
        "{repaired}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("app")?;
    let before = nat_rules(&pod, "iptables-nft-save")?;
    let before_legacy = nat_rules(&pod, "iptables-legacy-save")?;
    let printed = init_ok(&pod, &["--dry-run"])?;
    assert!(printed.contains("-j REDIRECT --to-ports 4143"), "{printed}");
    pretty_assertions::assert_eq!(before, nat_rules(&pod, "iptables-nft-save")?);
    pretty_assertions::assert_eq!(before_legacy, nat_rules(&pod, "iptables-legacy-save")?);
    assert!(!before.contains("WEFT"), "{before}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_mode_redirects_the_same_way() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &["--mode=legacy"])?;
    let legacy = nat_rules(&m.app, "iptables-legacy-save")?;
    let nft = nat_rules(&m.app, "iptables-nft-save")?;
    assert!(legacy.contains("-j WEFT_INBOUND"), "{legacy}");
    assert!(!nft.contains("WEFT"), "legacy mode wrote nft rules: {nft}");

    let (app, peer) = (m.app.ip(), m.peer.ip());
    assert_eq!(
        ask(&m.peer, at(app, APP_PORT)).await?,
        format!("proxy:4143 orig={app}:{APP_PORT}")
    );
    assert_eq!(
        ask(&m.app, at(peer, APP_PORT)).await?,
        format!("proxy:4140 orig={peer}:{APP_PORT}")
    );
    assert_eq!(
        ask_as(&m.app, PROXY_UID, at(peer, APP_PORT)).await?,
        "peer:8080"
    );

    init_ok(&m.app, &["--mode=legacy"])?;
    pretty_assertions::assert_eq!(legacy, nat_rules(&m.app, "iptables-legacy-save")?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_net_admin_init_exits_4_and_says_so() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("app")?;
    for mode in ["--mode=nft", "--mode=legacy"] {
        let out = pod.command_as(65534, BIN).args(["init", mode]).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{mode}: {err}");
        assert!(err.contains("NET_ADMIN"), "{mode}: {err}");
    }
    assert!(!nat_rules(&pod, "iptables-nft-save")?.contains("WEFT"));
    Ok(())
}

/// The redirect answers for every destination port, and the original
/// destination carries the exact port dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redirected_connection_reports_its_original_destination() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let m = meshed(&rig, &[])?;
    let peer = m.peer.ip();
    for port in [1u16, 80, 443, 8080, 65535] {
        // Nothing listens on these ports in the peer: only the redirect can
        // answer, and it must report the exact port dialled.
        assert_eq!(
            ask(&m.app, at(peer, port)).await?,
            format!("proxy:4140 orig={peer}:{port}")
        );
    }
    Ok(())
}
