//! The rig itself, as root: pods reach each other over the bridge, commands
//! and processes run in the right namespace and as the right user, and
//! teardown leaves nothing behind, also after a panic.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use weft_testrig::{Rig, RigError};

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn pods_talk_over_the_bridge_and_only_there() -> Result<(), RigError> {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let a = rig.pod("a")?;
    let b = rig.pod("b")?;
    assert_ne!(a.ip(), b.ip());

    let listener = b.in_netns(|| TcpListener::bind((b.ip(), 7000)))?;
    let listener = listener.map_err(|e| spawn_err("bind", e))?;
    let server = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut s, peer) = listener.accept()?;
        s.write_all(b"hello\n")?;
        Ok(peer.ip().to_string())
    });
    let mut client = a
        .in_netns(|| TcpStream::connect((b.ip(), 7000)))?
        .map_err(|e| spawn_err("connect", e))?;
    let mut got = String::new();
    client
        .read_to_string(&mut got)
        .map_err(|e| spawn_err("read", e))?;
    assert_eq!(got, "hello\n");
    let peer = server
        .join()
        .map_err(|_| spawn_err("join", std::io::Error::other("panic")))?;
    assert_eq!(
        peer.map_err(|e| spawn_err("accept", e))?,
        a.ip().to_string()
    );

    // The pod's routes cover the rig's /24 and nothing else: no default
    // route, so rig traffic can never leave for the host's network.
    let routes = a.run(&["ip", "-4", "route"])?;
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.starts_with("10.244.0.0/24 dev eth0"), "{routes}");
    Ok(())
}

#[test]
fn commands_run_in_the_pod_as_the_given_user() -> Result<(), RigError> {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("who")?;
    let out = pod
        .command_as(2102, "id")
        .arg("-u")
        .output()
        .map_err(|e| spawn_err("id", e))?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2102");
    let addrs = pod.run(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?;
    assert!(addrs.contains(&format!("inet {}/24", pod.ip())), "{addrs}");

    let err = pod.run(&["sh", "-c", "echo nope >&2; exit 4"]);
    assert!(
        matches!(err, Err(RigError::Command { ref stderr, .. }) if stderr == "nope"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn teardown_kills_processes_and_removes_namespaces() -> Result<(), RigError> {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let pod = rig.pod("p")?;
    let netns = pod.netns().to_owned();
    let bridge = rig.bridge_netns().to_owned();
    let mut sleeper = pod.command_as(2102, "sleep");
    sleeper.arg("600").stdout(Stdio::null());
    let mut sleeper = pod.spawn(sleeper)?;
    // A process left running on purpose: the rig must still remove it.
    let pid = sleeper.pid();
    assert!(sleeper.try_status()?.is_none());
    // Until `ip netns exec` and `setpriv` have exec'd `sleep`, the process
    // may not be in the namespace yet, and no teardown could see it there.
    let comm = format!("/proc/{pid}/comm");
    let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&comm)
        .map(|c| c.trim() != "sleep")
        .unwrap_or(true)
        && std::time::SystemTime::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::mem::forget(pod);
    drop(rig);

    assert!(!netns_exists(&netns), "{netns} survived teardown");
    assert!(!netns_exists(&bridge), "{bridge} survived teardown");
    let status = sleeper.wait_timeout(Duration::from_secs(5))?;
    assert!(status.is_some(), "process {pid} survived teardown");
    Ok(())
}

#[test]
fn teardown_runs_when_a_test_panics() -> Result<(), RigError> {
    if Rig::new_or_skip()?.is_none() {
        return Ok(());
    }
    let made = std::panic::catch_unwind(|| {
        let rig = Rig::new().expect("rig");
        let pod = rig.pod("doomed").expect("pod");
        let names = (pod.netns().to_owned(), rig.bridge_netns().to_owned());
        std::panic::panic_any(names);
    });
    let payload = made.expect_err("the closure panics");
    let (pod, bridge) = payload
        .downcast_ref::<(String, String)>()
        .expect("names as the panic payload");
    assert!(!netns_exists(pod));
    assert!(!netns_exists(bridge));
    Ok(())
}

#[test]
fn namespaces_of_a_killed_test_process_are_swept() -> Result<(), RigError> {
    if Rig::new_or_skip()?.is_none() {
        return Ok(());
    }
    // A process that has exited stands in for a test killed before its
    // rig's Drop ran; its pid is free again.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .map_err(|e| spawn_err("true", e))?;
    let pid = gone.id();
    gone.wait().map_err(|e| spawn_err("wait", e))?;
    let stale = format!("{}{pid}-0.bridge", weft_testrig::PREFIX);
    // Other tests of this binary build rigs in parallel, and their sweep can
    // remove the namespace while `ip netns add` is between creating its
    // file and mounting it (seen once in CI): then the add fails, and is
    // tried again. Whoever sweeps it, it must be gone after `Rig::new`.
    let mut attempts = 0;
    loop {
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &stale])
            .output()
            .map_err(|e| spawn_err("ip netns add", e))?;
        attempts += 1;
        if out.status.success() {
            break;
        }
        assert!(
            attempts < 5,
            "ip netns add {stale}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &stale])
            .output();
    }

    let _rig = Rig::new()?;
    assert!(!netns_exists(&stale), "{stale} was not swept");
    Ok(())
}

#[test]
fn bad_pod_names_are_refused() -> Result<(), RigError> {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    for bad in ["", "Upper", "has space", "x".repeat(21).as_str(), "a/b"] {
        assert!(
            matches!(rig.pod(bad), Err(RigError::BadPodName(_))),
            "{bad:?}"
        );
    }
    rig.pod("ok")?;
    assert!(matches!(rig.pod("ok"), Err(RigError::DuplicatePod(_))));
    Ok(())
}

fn spawn_err(what: &str, source: std::io::Error) -> RigError {
    RigError::Spawn {
        command: what.to_owned(),
        source,
    }
}
