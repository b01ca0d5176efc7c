//! The rig's two doors, as root: a pod reaches one host address through
//! [`weft_testrig::HostForward`] and nothing else of the host, and programs
//! in a pod resolve the names of [`weft_testrig::Pod::set_hosts`] while the
//! host's own `/etc/hosts` stays as it was. Both are gone after teardown.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use weft_testrig::{Rig, RigError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An echo server on the host's loopback that upper-cases what it reads
/// and closes after the client's EOF (so half-close must pass through).
fn host_echo() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut got = Vec::new();
                if conn.read_to_end(&mut got).is_ok() {
                    let _ = conn.write_all(&got.to_ascii_uppercase());
                }
            });
        }
    });
    Ok(addr)
}

fn exchange(mut stream: TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(message)?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_forward_reaches_one_host_address_and_closes_with_its_handle() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let gateway = rig.pod("gateway")?;
    let client = rig.pod("client")?;
    let target = host_echo()?;
    let forward = gateway.forward_to_host(8080, target)?;
    assert_eq!(
        forward.listen_addr(),
        SocketAddr::from((gateway.ip(), 8080))
    );

    // Another pod reaches the host address over the bridge, both ways,
    // half-close included.
    let stream = client.in_netns(|| TcpStream::connect(forward.listen_addr()))??;
    assert_eq!(exchange(stream, b"hello host")?, b"HELLO HOST");
    assert_eq!(forward.accepted(), 1);

    // The host's loopback itself stays out of reach from the pod.
    let direct =
        client.in_netns(|| TcpStream::connect_timeout(&target, Duration::from_millis(500)))?;
    assert!(direct.is_err(), "the pod reached the host's loopback");

    // An idle connection is cut when the forward goes, and the port closes.
    let mut idle = client.in_netns(|| TcpStream::connect(forward.listen_addr()))??;
    let deadline = std::time::Duration::from_secs(5);
    let mut waited = Duration::ZERO;
    while forward.open_connections() == 0 && waited < deadline {
        thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    assert_eq!(forward.open_connections(), 1);
    let listen = forward.listen_addr();
    drop(forward);
    idle.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 1];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    let refused = client.in_netns(|| TcpStream::connect(listen))?;
    assert!(refused.is_err(), "the forward still listens after drop");
    Ok(())
}

#[test]
fn hosts_apply_to_the_pods_programs_only() -> TestResult {
    let Some(rig) = Rig::new_or_skip()? else {
        return Ok(());
    };
    let host_hosts = std::fs::read_to_string("/etc/hosts")?;
    let pod = rig.pod("resolver")?;
    let name = "weft-identity.weft.svc.cluster.local";
    let file = pod.set_hosts(&[(IpAddr::V4(Ipv4Addr::new(10, 244, 0, 9)), name)])?;
    let resolved = pod.run(&["getent", "hosts", name])?;
    assert!(resolved.starts_with("10.244.0.9"), "{resolved}");
    // A later call replaces the earlier names.
    pod.set_hosts(&[(IpAddr::V4(Ipv4Addr::new(10, 244, 0, 10)), name)])?;
    let resolved = pod.run(&["getent", "hosts", name])?;
    assert!(resolved.starts_with("10.244.0.10"), "{resolved}");
    assert!(pod.run(&["getent", "hosts", "localhost"]).is_ok());

    assert_eq!(std::fs::read_to_string("/etc/hosts")?, host_hosts);
    let folder = file.parent().ok_or("no folder")?.to_path_buf();
    drop(rig);
    assert!(!folder.exists(), "{} survived teardown", folder.display());
    assert!(!Path::new(&file).exists());
    Ok(())
}

// The error type stays printable for the harness.
#[test]
fn io_errors_name_what_failed() {
    let err = RigError::Io {
        what: "binding 10.244.0.2:8080 in pod gateway".to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    };
    assert!(format!("{err:?}").starts_with("binding 10.244.0.2:8080 in pod gateway: "));
}
