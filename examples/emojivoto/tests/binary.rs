//! The built `emojivoto` binary: its flags, the vote bot against a real
//! web, and SIGTERM.

mod support;

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use support::{App, PATIENCE, get};

fn emojivoto() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emojivoto"));
    // The tests' environment must not feed the flags.
    for var in [
        "EMOJIVOTO_LISTEN",
        "EMOJIVOTO_ADMIN_LISTEN",
        "EMOJISVC_HOST",
        "VOTINGSVC_HOST",
        "INDEX_BUNDLE",
        "WEB_HOST",
        "EMOJIVOTO_VOTE_RATE",
        "EMOJIVOTO_DOUGHNUT_SHARE",
        "EMOJIVOTO_VOTE_COUNT",
    ] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

async fn output(command: &mut Command) -> Output {
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("emojivoto exits in time")
        .expect("emojivoto runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_bot_sends_n_votes_fifteen_percent_doughnut() {
    let app = App::start().await;
    let out = output(emojivoto().args([
        "vote-bot",
        "--web-host",
        &app.web.addr.to_string(),
        "--count",
        "20",
        "--rate",
        "50",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let votes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("vote ")).collect();
    assert_eq!(votes.len(), 20, "{stdout}");
    let doughnuts: Vec<_> = votes.iter().filter(|l| l.contains(":doughnut:")).collect();
    assert_eq!(doughnuts.len(), 3, "{stdout}");
    for line in &votes {
        let expected = if line.contains(":doughnut:") {
            "-> 500 Internal Server Error"
        } else {
            "-> 200 OK"
        };
        assert!(line.ends_with(expected), "{line}");
    }
    assert!(
        stdout.contains(
            "vote-bot: 20 votes: 17 ok, 3 failed with an HTTP error, 0 not sent; 3 for :doughnut:"
        ),
        "{stdout}"
    );

    // Web counted the 17 others.
    let board = get(app.web.addr, "/api/leaderboard").await.json();
    let total: u64 = board
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            r["votes"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("votes")
        })
        .sum();
    assert_eq!(total, 17, "{board}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_bot_fails_only_when_no_vote_got_through() {
    // A port nobody listens on: every connection is refused.
    let closed = support::loopback().await;
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let out = output(emojivoto().args([
        "vote-bot",
        "--web-host",
        &addr.to_string(),
        "--count",
        "3",
        "--rate",
        "100",
        "--timeout",
        "1s",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout.matches("not sent:").count(), 3, "{stdout}");
    assert!(stderr.contains("no vote reached"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_usage_errors() {
    for (args, flag) in [
        (
            &["vote-bot", "--web-host", "w:80", "--rate=-1"][..],
            "--rate",
        ),
        (
            &["vote-bot", "--web-host", "w:80", "--doughnut-share", "2"],
            "--doughnut-share",
        ),
        (
            &["vote-bot", "--web-host", "w:80", "--count", "x"],
            "--count",
        ),
        (&["vote-bot"], "--web-host"),
        (
            &["web", "--emoji-addr", "emoji-svc", "--voting-addr", "v:1"],
            "--emoji-addr",
        ),
        (&["emoji-svc", "--listen", "nope"], "--listen"),
        (
            &["voting-svc", "--shutdown-grace", "5h"],
            "--shutdown-grace",
        ),
        (&["no-such-subcommand"], "no-such-subcommand"),
    ] {
        let out = output(emojivoto().args(args)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A port in use is a clear error too, exit 1.
    let taken = support::loopback().await;
    let addr = taken.local_addr().expect("address").to_string();
    let out = output(emojivoto().args(["emoji-svc", "--listen", &addr])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let mut child = emojivoto()
        .args([
            "voting-svc",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voting-svc starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // The log names the ports bound: "gRPC listening on 127.0.0.1:PORT".
    let find_port = async {
        let mut ports = (None, None);
        while let Some(line) = lines.next_line().await.expect("stderr line") {
            let addr = line
                .split("listening on ")
                .nth(1)
                .map(|a| a.trim().to_string());
            if line.contains("gRPC listening on") {
                ports.0 = addr;
            } else if line.contains("admin listening on") {
                ports.1 = addr;
            }
            if let (Some(grpc), Some(admin)) = &ports {
                return (grpc.clone(), admin.clone());
            }
        }
        panic!("voting-svc ended before listening");
    };
    let (grpc, admin) = tokio::time::timeout(PATIENCE, find_port)
        .await
        .expect("voting-svc listens in time");
    let admin = admin.parse().expect("an address");
    assert_eq!(get(admin, "/healthz").await.status, 200);
    let mut h2 = support::H2::connect(grpc.parse().expect("an address")).await;
    let answer = h2.unary("/emojivoto.v1.VotingService/Results", &[]).await;
    assert_eq!(answer.grpc_status(), Some(0));

    let pid = child.id().expect("a pid").to_string();
    let kill = output(Command::new("kill").args(["-TERM", &pid])).await;
    assert!(kill.status.success(), "{kill:?}");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within the grace")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
    // The drain is logged.
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    let rest = rest.join("\n");
    assert!(rest.contains("SIGTERM: shutting down"), "{rest}");
    assert!(rest.contains("gRPC stopped"), "{rest}");
}
