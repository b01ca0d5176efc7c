//! `weft-proxy run`: the transparent inbound/outbound proxy.
//!
//! A connection's path is a stack of small layers: [`accept`] (listener,
//! original destination, a [`context::ConnContext`]), [`detect`] (which
//! protocol, racing both sides' first bytes), then [`http`] (hyper, golden
//! metrics per request) or [`tcp`] (opaque bytes). [`metrics`] and [`admin`]
//! export what happened; [`drain`] ends it all gracefully. Mesh TLS
//! ([`crate::tls::mesh`]) slots in around detection: outbound it decides how
//! [`connect`] dials, inbound it terminates the peer proxy's TLS before the
//! application protocol is detected.

pub mod accept;
pub mod admin;
pub mod bounded;
pub mod config;
pub mod conn;
pub mod connect;
pub mod context;
pub mod detect;
pub mod drain;
pub mod http;
pub mod io;
pub mod metrics;
pub mod tcp;

use std::io as stdio;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

pub use config::{Config, ConfigError, Env, ProcessEnv, Target};
use context::Direction;
use drain::Drain;
use metrics::Metrics;
use weft_core::ports::PortList;

use crate::identity::MeshSettings;
use crate::tls::Mesh;
use crate::tls::mesh::MeshError;
use crate::tls::metrics::MeshMetrics;

/// Why the proxy could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({name}): {source}")]
    Bind {
        /// The variable the address came from.
        name: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: stdio::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] stdio::Error),
    /// The tracing subscriber could not be installed.
    #[error("cannot install the log subscriber: {0}")]
    Tracing(String),
    /// The mesh settings are incomplete or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Mesh TLS could not be set up.
    #[error("mesh TLS: {0}")]
    Mesh(#[from] MeshError),
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    metrics: Arc<Metrics>,
    drain: Drain,
    opaque_ports: PortList,
    detect_timeouts: detect::Timeouts,
    connect_timeout: Duration,
    /// Identity and mesh TLS; `None` when the pod has no trust anchors.
    mesh: Option<Arc<Mesh>>,
}

/// A proxy whose listeners are bound and not yet serving.
#[derive(Debug)]
pub struct Proxy {
    inbound: TcpListener,
    outbound: TcpListener,
    admin: TcpListener,
    config: Config,
    shared: Arc<Shared>,
    admin_state: Arc<admin::AdminState>,
}

impl Proxy {
    /// Binds the inbound, outbound and admin listeners.
    pub async fn bind(config: Config) -> Result<Self, RunError> {
        let inbound = bind(config::vars::INBOUND_LISTEN_ADDR, config.inbound_addr)?;
        let outbound = bind(config::vars::OUTBOUND_LISTEN_ADDR, config.outbound_addr)?;
        let admin = bind(config::vars::ADMIN_LISTEN_ADDR, config.admin_addr)?;
        let mut metrics = Metrics::new();
        let mesh = match MeshSettings::from_config(&config)? {
            Some(settings) => {
                let mesh_metrics = MeshMetrics::register(metrics.registry_mut());
                Some(Arc::new(Mesh::new(settings, mesh_metrics)?))
            }
            None => None,
        };
        let metrics = Arc::new(metrics);
        let drain = Drain::new();
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            drain: drain.clone(),
            opaque_ports: config.opaque_ports.clone(),
            detect_timeouts: config.detect_timeouts,
            connect_timeout: config.connect_timeout,
            mesh,
        });
        let admin_state = Arc::new(admin::AdminState::new(metrics, drain));
        Ok(Self {
            inbound,
            outbound,
            admin,
            config,
            shared,
            admin_state,
        })
    }

    /// The bound inbound address.
    pub fn inbound_addr(&self) -> stdio::Result<SocketAddr> {
        self.inbound.local_addr()
    }

    /// The bound outbound address.
    pub fn outbound_addr(&self) -> stdio::Result<SocketAddr> {
        self.outbound.local_addr()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> stdio::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// A handle that starts the drain (what SIGTERM and `/shutdown` do).
    pub fn drain(&self) -> Drain {
        self.shared.drain.clone()
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Serves until drained; returns once in-flight work finished or the
    /// grace period ran out.
    pub async fn serve(self) {
        let Self {
            inbound,
            outbound,
            admin,
            config,
            shared,
            admin_state,
        } = self;
        let admin_task = tokio::spawn(admin::serve(admin, admin_state.clone()));
        // The certificate comes before readiness and before the first
        // connection is taken (the listeners queue them meanwhile).
        let identity_task = shared.mesh.as_ref().and_then(|mesh| mesh.start());
        if let Some(mesh) = &shared.mesh {
            tracing::info!(identity = %mesh.store().identity(), "waiting for a certificate");
            tokio::select! {
                () = mesh.certified() => {}
                () = shared.drain.signaled() => {
                    tracing::info!("drained before the first certificate");
                    admin_task.abort();
                    if let Some(task) = identity_task {
                        task.abort();
                    }
                    return;
                }
            }
        }
        let inbound_task = tokio::spawn(accept::serve(
            inbound,
            Direction::Inbound,
            config.inbound_target,
            shared.clone(),
        ));
        let outbound_task = tokio::spawn(accept::serve(
            outbound,
            Direction::Outbound,
            config.outbound_target,
            shared.clone(),
        ));
        admin_state.set_ready();
        tracing::info!(
            inbound = %config.inbound_addr,
            outbound = %config.outbound_addr,
            admin = %config.admin_addr,
            "proxy ready"
        );

        shared.drain.signaled().await;
        tracing::info!(grace = ?config.shutdown_grace, "draining");
        // The accept loops end on the signal; their listeners close with them.
        for task in [inbound_task, outbound_task] {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "listener task failed");
            }
        }
        let left = shared.drain.wait(config.shutdown_grace).await;
        if left > 0 {
            tracing::warn!(
                connections = left,
                "grace period over; closing remaining connections"
            );
        } else {
            tracing::info!("drained");
        }
        admin_task.abort();
        if let Some(task) = identity_task {
            task.abort();
        }
    }
}

/// Pending-connection queue of each listener: room for a burst of new
/// connections (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

fn bind(name: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    let listen = || -> stdio::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // A restarted proxy must not wait out TIME_WAIT of its predecessor.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| RunError::Bind { name, addr, source })
}

/// Installs the log subscriber from `WEFT_PROXY_LOG` (already validated).
pub fn init_tracing(filter: &str) -> Result<(), RunError> {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map_err(|e| RunError::Tracing(e.to_string()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stdio::stderr)
        .try_init()
        .map_err(|e| RunError::Tracing(e.to_string()))
}

/// Runs the proxy until SIGTERM, SIGINT or `/shutdown`, then drains.
pub async fn run(config: Config) -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let proxy = Proxy::bind(config).await?;
    let drain = proxy.drain();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        drain.signal();
    });
    proxy.serve().await;
    Ok(())
}
