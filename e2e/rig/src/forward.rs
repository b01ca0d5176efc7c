//! A port of a pod that leads to one address of the host: the only door
//! between the rig and the host's network namespace.
//!
//! Pods have no route to the host, by design: the rig's addresses must never
//! reach the host's routing tables. An end-to-end test still needs its pods
//! to reach a process on the host's loopback (weft-control, which itself
//! talks to the API server on 127.0.0.1). Rather than route anything, a
//! [`HostForward`] listens on `<pod ip>:<port>` inside a pod and splices each
//! connection it accepts, in user space, to one host address — a Service's
//! virtual IP in front of a single endpoint. Nothing else of the host is
//! reachable, and the host's interfaces, routes and iptables are untouched.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::RigError;
use crate::pod::Pod;

/// How often the accept loop looks for a new connection or a stop. Polling
/// keeps the loop free of signals and self-connections; a few milliseconds
/// on a control-plane connect are nothing to a test.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// How long connecting to the host address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A listener in a pod whose connections are spliced to a host address;
/// stops listening and cuts its open connections when dropped.
#[derive(Debug)]
pub struct HostForward {
    listen: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicU64,
    next_id: AtomicU64,
    /// Both sockets of every open connection, so a stop can cut them.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
}

impl Shared {
    fn open(&self) -> std::sync::MutexGuard<'_, Vec<(u64, TcpStream, TcpStream)>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Pod<'_> {
    /// Listens on this pod's address, `port`, and forwards every connection
    /// to `target` as the host sees it (from the network namespace of the
    /// calling thread: the host's, unless called inside [`Pod::in_netns`]).
    /// A connection the target refuses is closed at once.
    pub fn forward_to_host(&self, port: u16, target: SocketAddr) -> Result<HostForward, RigError> {
        let listen = SocketAddr::from((self.ip(), port));
        let io_err = |what: &str| {
            let what = format!("{what} {listen} in pod {}", self.name());
            move |source| RigError::Io { what, source }
        };
        let listener = self
            .in_netns(|| TcpListener::bind(listen))?
            .map_err(io_err("binding"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("configuring"))?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        // Spawned from the caller's thread, so its connects leave from the
        // caller's namespace while the listener stays in the pod's.
        let acceptor = thread::Builder::new()
            .name(format!("forward-{port}"))
            .spawn(move || accept_loop(&listener, target, &accepting))
            .map_err(io_err("starting the forwarder for"))?;
        Ok(HostForward {
            listen,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

impl HostForward {
    /// The address pods connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The host address connections are spliced to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open().len()
    }
}

impl Drop for HostForward {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // The loop sees the flag within one poll; the listener closes
            // with it, so new connections are refused from here on.
            let _ = acceptor.join();
        }
        for (_, client, upstream) in self.shared.open().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                // A connection whose thread cannot start is dropped (closed),
                // which its client sees as the target refusing.
                let _ = thread::Builder::new()
                    .name("forward-conn".to_owned())
                    .spawn(move || splice(client, target, &shared));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            // Transient (a connection reset before accept, out of file
            // descriptors): keep serving the others.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Copies both ways between `client` and a new connection to `target` until
/// both directions end, passing half-closes on.
fn splice(client: TcpStream, target: SocketAddr, shared: &Shared) {
    // Accepted sockets inherit the listener's non-blocking mode.
    if client.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(client_w), Ok(upstream_r), Ok(client_cut), Ok(upstream_cut)) = clones else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.open().push((id, client_cut, upstream_cut));
    if shared.stop.load(Ordering::SeqCst) {
        // Registered after the stop drained the list: cut it here.
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }
    let back = thread::Builder::new()
        .name("forward-back".to_owned())
        .spawn(move || pipe(upstream_r, client_w));
    pipe(client, upstream);
    if let Ok(back) = back {
        let _ = back.join();
    }
    shared.open().retain(|(open, _, _)| *open != id);
}

/// Copies `from` into `to` until EOF, then half-closes `to`; an error on
/// either side cuts both, so the opposite direction ends too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    match io::copy(&mut from, &mut to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}
