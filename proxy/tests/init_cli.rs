//! The `weft-proxy init` and `await` binaries as a kubelet runs them, for the
//! cases that need no network namespace: the arguments the injector writes,
//! `--dry-run`, bad arguments, a missing iptables, a proxy never ready.
//! Each failure must exit with its documented code (docs/architecture.md).

mod init_support;

use std::net::TcpListener;
use std::process::{Command, Output};

use init_support::assert_golden;

const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");

fn weft_proxy(args: &[&str]) -> Output {
    match Command::new(BIN).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("could not run {BIN}: {e}"),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn dry_run_with_the_injectors_arguments_prints_the_payload() {
    // Exactly the args the injector writes for a pod with both skip lists.
    let out = weft_proxy(&[
        "init",
        "--proxy-uid=2102",
        "--inbound-port=4143",
        "--outbound-port=4140",
        "--admin-port=4191",
        "--tap-port=4190",
        "--skip-inbound-ports=22,25,8000-8200",
        "--skip-outbound-ports=3306,5432,11211-11213",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_golden("skip-lists.rules", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn dry_run_defaults_match_the_contract_defaults() {
    let out = weft_proxy(&["init", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_golden("defaults.rules", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bad_arguments_exit_2_and_name_the_problem() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["init", "--dry-run", "--skip-inbound-ports=25,9-3"],
            "`9-3` is an inverted range",
        ),
        (&["init", "--dry-run", "--inbound-port=0"], "--inbound-port"),
        (
            &["init", "--dry-run", "--outbound-port=4143"],
            "--inbound-port and --outbound-port are both 4143",
        ),
        (&["init", "--dry-run", "--mode=iptables"], "--mode"),
    ];
    for (args, needle) in cases {
        let out = weft_proxy(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn missing_iptables_exits_3_with_an_install_hint() {
    // An empty PATH: the tools cannot be found, so nothing on this machine
    // can be changed whatever the privileges of the test.
    let empty = std::env::temp_dir().join(format!("weft-empty-path-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&empty) {
        panic!("{}: {e}", empty.display());
    }
    for (mode, tool) in [
        ("nft", "iptables-nft-save"),
        ("legacy", "iptables-legacy-save"),
    ] {
        let out = Command::new(BIN)
            .args(["init", &format!("--mode={mode}")])
            .env("PATH", &empty)
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => panic!("could not run {BIN}: {e}"),
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(&format!("`{tool}` not found")), "{err}");
        assert!(err.contains("apt-get install -y iptables"), "{err}");
    }
    let _ = std::fs::remove_dir(&empty);
}

#[test]
fn await_exits_1_when_the_proxy_never_gets_ready() {
    // A port known to be free: every probe is refused.
    let free = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr,
        Err(e) => panic!("bind: {e}"),
    };
    let out = weft_proxy(&["await", "--timeout=300ms", &format!("--admin-addr={free}")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "http://{free}/ready did not answer 200 within 300ms"
        )),
        "{err}"
    );
}

#[test]
fn await_rejects_a_bad_timeout() {
    let out = weft_proxy(&["await", "--timeout=soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`soon` is not a duration"),
        "{}",
        stderr(&out)
    );
}
