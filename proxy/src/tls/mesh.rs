//! Mesh TLS on the connection path: what the outbound and inbound sides do
//! with a connection before its application protocol is served.
//!
//! Outbound: destination is asked about the original destination; a
//! meshed peer gets mesh TLS (the connector dials the original address —
//! the peer pod's redirect takes it to its inbound proxy — and asks for the
//! announced identity), anything else plaintext. A Service's ClusterIP is
//! balanced over the Service's endpoints ([`crate::balance`]), each with
//! mesh TLS or plaintext as destination says of it. Inbound: a connection
//! whose first record is a mesh ClientHello is terminated here and its
//! application protocol detected inside; plaintext and the application's
//! own TLS go on as before, or are refused when the pod requires identity.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::TlsError;
use super::accept::{self, Hello};
use super::config;
use super::connect::MeshConnect;
use super::control::ControlClient;
use super::io::ClientIo;
use super::labels::PeerLabeler;
use super::metrics::{Lookup, MeshMetrics, Refusal};
use super::peer;
use crate::balance::{Balancer, Load, Loads, Target};
use crate::destination::answer::{Endpoint, Service};
use crate::destination::{self, Cache, DestinationClient, Resolution};
use crate::identity::renew::{self, DEFAULT_BACKOFF};
use crate::identity::{Certifier, IdentityStore, LocalKey, MeshSettings};
use crate::run::connect::Dial;
use crate::run::context::{ConnContext, Direction, Protocol, TlsStatus};
use crate::run::detect::{self, Detection, Timeouts};

/// How long the rest of a ClientHello may take once its first bytes came.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a mesh handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an inbound application greeting that beat the client's first
/// byte is held for a mesh ClientHello racing it (see "Mesh TLS" in
/// docs/architecture.md).
pub const SERVER_FIRST_GRACE: Duration = Duration::from_millis(50);
/// How long one request to identity may take.
pub const IDENTITY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to destination, and each watch's response head,
/// may take (a first connection to an unknown address waits for the first
/// answer at most `destination::DEFAULT_SETTINGS.first_answer`, then goes
/// out in plaintext).
pub const DESTINATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Why mesh TLS could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A TLS configuration or control-plane address was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The key or CSR could not be made.
    #[error(transparent)]
    Key(#[from] crate::identity::csr::KeyError),
}

/// Everything mesh TLS needs, shared by every connection.
pub struct Mesh {
    store: Arc<IdentityStore>,
    trust_domain: String,
    require_identity: bool,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    destination: Cache,
    metrics: Arc<MeshMetrics>,
    labeler: PeerLabeler,
    certifier: Mutex<Option<Certifier>>,
    loads: Loads,
    services: Mutex<HashMap<SocketAddr, Balanced>>,
}

/// The balancer built from one answer for a Service address.
#[derive(Clone, Debug)]
pub struct Balanced {
    /// The answer it was built from (rebuilt when the answer changes).
    resolution: Arc<Resolution>,
    /// The endpoints.
    pub balancer: Arc<Balancer>,
}

/// Service addresses whose balancer is kept; past it the map starts over
/// (the loads are kept elsewhere, so nothing but the snapshots is lost).
const MAX_SERVICES: usize = 2_000;

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("identity", &self.store.identity().to_string())
            .field("require_identity", &self.require_identity)
            .field("destination", &self.destination)
            .finish()
    }
}

/// What the outbound side decided for a connection.
#[derive(Debug, Default)]
pub struct Outbound {
    /// Mesh TLS to the peer, or `None` for plaintext.
    pub tls: Option<MeshConnect>,
    /// Destination says the port is opaque.
    pub opaque: bool,
    /// The original destination is a Service: its endpoints, and the one
    /// this connection was first sent to.
    pub service: Option<(Arc<Balancer>, Arc<Load>)>,
}

impl Mesh {
    /// Makes the key, the TLS configurations and the control-plane clients.
    pub fn new(settings: MeshSettings, metrics: MeshMetrics) -> Result<Self, MeshError> {
        let trust_domain = settings.identity.trust_domain().to_owned();
        let store = Arc::new(IdentityStore::new(settings.identity.clone()));
        let key = Arc::new(LocalKey::generate(&settings.identity)?);
        let control = config::control_client(&settings.anchors)?;
        let certifier = Certifier::new(
            ControlClient::new(&settings.identity_addr, control.clone(), IDENTITY_TIMEOUT)?,
            settings.token_file.clone(),
            key,
            settings.identity.clone(),
            &settings.anchors,
        );
        let destination = Cache::new(
            Arc::new(DestinationClient::new(ControlClient::new(
                &settings.destination_addr,
                control,
                DESTINATION_TIMEOUT,
            )?)),
            &trust_domain,
            destination::DEFAULT_SETTINGS,
            metrics.destination().clone(),
        );
        Ok(Self {
            server: config::mesh_server(&settings.anchors, &trust_domain, store.clone())?,
            client: config::mesh_client(&settings.anchors, &trust_domain, store.clone())?,
            store,
            trust_domain,
            require_identity: settings.require_identity,
            destination,
            metrics: Arc::new(metrics),
            labeler: PeerLabeler::default(),
            certifier: Mutex::new(Some(certifier)),
            loads: Loads::default(),
            services: Mutex::default(),
        })
    }

    /// Starts certifying the proxy (once; later calls return `None`).
    pub fn start(&self) -> Option<JoinHandle<()>> {
        let certifier = self
            .certifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(tokio::spawn(renew::run(
            self.store.clone(),
            certifier,
            self.metrics.clone(),
            DEFAULT_BACKOFF,
        )))
    }

    /// Waits for the first certificate.
    pub async fn certified(&self) {
        self.store.certified().await;
    }

    /// Whether inbound clients must present a mesh identity
    /// (`config.weft.dev/require-identity`).
    pub fn requires_identity(&self) -> bool {
        self.require_identity
    }

    /// The proxy's identity and certificate.
    pub fn store(&self) -> &Arc<IdentityStore> {
        &self.store
    }

    /// Asks destination about `ctx.orig_dst` and records the peer in `ctx`.
    /// A Service address gets its balancer, and `ctx.target` becomes the
    /// endpoint picked for the connection's first dial.
    pub async fn outbound(&self, ctx: &mut ConnContext) -> Outbound {
        let resolution = match self.destination.get(ctx.orig_dst).await {
            Ok(resolution) => resolution,
            Err(_) => {
                self.metrics.lookup(Lookup::Failed);
                return Outbound::default();
            }
        };
        if let Some(balanced) = self.balanced(ctx.orig_dst, &resolution)
            && let Some(target) = balanced.balancer.pick(&[])
        {
            self.metrics.lookup(Lookup::Service);
            // The connection is labelled as its first endpoint; each HTTP
            // request is labelled as the endpoint it goes to.
            ctx.target = target.addr;
            ctx.peer_labels = target.labels.clone();
            if let Some(tls) = &target.tls {
                ctx.tls = TlsStatus::Mesh;
                ctx.peer_identity = Some(tls.identity().to_string());
            }
            return Outbound {
                tls: target.tls.clone(),
                opaque: target.opaque,
                service: Some((balanced.balancer.clone(), target.load.clone())),
            };
        }
        let tls = self.mesh_connect(resolution.identity.as_ref());
        let id = tls.as_ref().map(MeshConnect::identity);
        ctx.peer_labels = self
            .labeler
            .labels(Direction::Outbound, id, &resolution.labels);
        match (id, &resolution.identity) {
            (Some(id), _) => {
                self.metrics.lookup(Lookup::Meshed);
                ctx.tls = TlsStatus::Mesh;
                ctx.peer_identity = Some(id.to_string());
            }
            // Meshed, but the identity cannot be asked for: plaintext.
            (None, Some(_)) => self.metrics.lookup(Lookup::Failed),
            (None, None) => self.metrics.lookup(Lookup::Unmeshed),
        }
        Outbound {
            tls,
            opaque: resolution.opaque,
            service: None,
        }
    }

    /// The balancer of the Service at `addr` now (for each request of a
    /// connection to it), or `None` when destination no longer answers
    /// for it as a Service with endpoints: the request then goes to the
    /// original destination.
    pub async fn service(&self, addr: SocketAddr) -> Option<Arc<Balancer>> {
        let resolution = self.destination.get(addr).await.ok()?;
        self.balanced(addr, &resolution).map(|b| b.balancer)
    }

    /// The balancer for `resolution` of `addr`: the one built for the same
    /// answer, or a new one. `None` unless it is a Service with endpoints.
    fn balanced(&self, addr: SocketAddr, resolution: &Arc<Resolution>) -> Option<Balanced> {
        let service = resolution
            .service
            .as_ref()
            .filter(|s| !s.endpoints.is_empty())?;
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = services.get(&addr)
            && Arc::ptr_eq(&built.resolution, resolution)
        {
            return Some(built.clone());
        }
        let built = Balanced {
            resolution: resolution.clone(),
            balancer: Arc::new(self.balancer(resolution, service)),
        };
        if services.len() >= MAX_SERVICES && !services.contains_key(&addr) {
            services.clear();
        }
        services.insert(addr, built.clone());
        Some(built)
    }

    fn balancer(&self, resolution: &Resolution, service: &Service) -> Balancer {
        let targets = service
            .endpoints
            .iter()
            .map(|e| {
                let tls = self.mesh_connect(e.identity.as_ref());
                let id = tls.as_ref().map(MeshConnect::identity);
                Target {
                    addr: e.addr,
                    labels: self.labeler.labels(
                        Direction::Outbound,
                        id,
                        &endpoint_labels(resolution, e),
                    ),
                    tls,
                    opaque: e.opaque,
                    load: self.loads.get(e.addr),
                }
            })
            .collect();
        Balancer::new(targets)
    }

    /// Mesh TLS to a peer that must present `identity`; `None` for
    /// plaintext (no identity, or one that cannot be asked for).
    fn mesh_connect(&self, identity: Option<&Arc<weft_certs::SpiffeId>>) -> Option<MeshConnect> {
        let id = identity?;
        let name = peer::server_name(id)
            .inspect_err(|e| tracing::warn!(error = %e, "plaintext to a meshed peer"))
            .ok()?;
        Some(MeshConnect::new(
            self.client.clone(),
            id.clone(),
            name,
            HANDSHAKE_TIMEOUT,
            self.metrics.clone(),
        ))
    }

    /// Takes an inbound connection after detection's first pass over the
    /// raw stream: terminates mesh TLS and detects again inside it, passes
    /// anything else on, or refuses it (`None`) when identity is required.
    pub async fn inbound(
        &self,
        mut stream: TcpStream,
        mut first: Detection,
        dial: Dial,
        ctx: &mut ConnContext,
        timeouts: Timeouts,
        opaque_port: bool,
    ) -> Option<(ClientIo, Detection, Dial)> {
        let hello_prefix = match first.protocol {
            Protocol::Tls => Some(std::mem::take(&mut first.client_prefix)),
            // The application greeted before the client's first byte: a
            // mesh client's ClientHello may be right behind.
            Protocol::Opaque
                if first.client_prefix.is_empty() && !first.server_prefix.is_empty() =>
            {
                match self.grace(&mut stream).await {
                    Ok(prefix) if prefix.first() == Some(&0x16) => Some(prefix),
                    Ok(prefix) => {
                        first.client_prefix = prefix;
                        None
                    }
                    Err(e) => {
                        tracing::debug!(client = %ctx.client, error = %e, "client failed");
                        return None;
                    }
                }
            }
            _ => None,
        };
        if let Some(prefix) = hello_prefix {
            match accept::read_client_hello(&mut stream, prefix, HELLO_TIMEOUT).await {
                Ok((Hello::Mesh(accepted), _)) => {
                    return self
                        .terminate(*accepted, stream, first, dial, ctx, timeouts, opaque_port)
                        .await;
                }
                Ok((Hello::Other, prefix)) => first.client_prefix = prefix,
                Err(e) => {
                    tracing::debug!(client = %ctx.client, error = %e, "client failed");
                    return None;
                }
            }
        }
        if self.require_identity {
            self.metrics.refused(Refusal::IdentityRequired);
            tracing::info!(client = %ctx.client, "refused: identity required, client is not mesh TLS");
            // A reset, not a clean close: nothing was served.
            if let Err(e) = stream.set_zero_linger() {
                tracing::debug!(error = %e, "could not set SO_LINGER");
            }
            return None;
        }
        if opaque_port {
            first.protocol = Protocol::Opaque;
        }
        Some((ClientIo::Plain(stream), first, dial))
    }

    async fn grace(&self, stream: &mut TcpStream) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(1024);
        match tokio::time::timeout(SERVER_FIRST_GRACE, stream.read_buf(&mut buf)).await {
            Ok(Ok(_)) | Err(_) => Ok(buf.freeze()),
            Ok(Err(e)) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn terminate(
        &self,
        accepted: rustls::server::Accepted,
        stream: TcpStream,
        first: Detection,
        dial: Dial,
        ctx: &mut ConnContext,
        timeouts: Timeouts,
        opaque_port: bool,
    ) -> Option<(ClientIo, Detection, Dial)> {
        let handshake = accept::handshake(
            accepted,
            stream,
            self.server.clone(),
            &self.trust_domain,
            HANDSHAKE_TIMEOUT,
        )
        .await;
        let (tls, id) = match handshake {
            Ok(done) => done,
            Err(e) => {
                self.metrics.refused(Refusal::TlsHandshake);
                tracing::info!(client = %ctx.client, error = %e, "mesh TLS refused");
                return None;
            }
        };
        ctx.tls = TlsStatus::Mesh;
        ctx.peer_labels = self.labeler.labels(Direction::Inbound, Some(&id), &[]);
        ctx.peer_identity = Some(id.to_string());
        // The client is authenticated: only now may the application see a
        // connection (with require-identity the dial waited until here).
        let dial = dial.started();
        let mut client = ClientIo::Mesh(Box::new(tls));
        // The first pass already decided opaque when the application spoke
        // before the ClientHello: its greeting is waiting in `first`.
        let decided = match (opaque_port, first.protocol) {
            (true, _) => Some("opaque port"),
            (false, Protocol::Opaque) => Some(first.reason),
            _ => None,
        };
        let (inner, dial) = if let Some(reason) = decided {
            let inner = Detection {
                protocol: Protocol::Opaque,
                client_prefix: Bytes::new(),
                server_prefix: Bytes::new(),
                reason,
            };
            (inner, dial)
        } else {
            match detect::detect(&mut client, dial, timeouts).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(client = %ctx.client, error = %e, "mesh client failed during detection");
                    return None;
                }
            }
        };
        // What the application sent before the handshake goes out first.
        let server_prefix = if first.server_prefix.is_empty() {
            inner.server_prefix
        } else {
            let mut joined = BytesMut::from(&first.server_prefix[..]);
            joined.extend_from_slice(&inner.server_prefix);
            joined.freeze()
        };
        Some((
            client,
            Detection {
                server_prefix,
                ..inner
            },
            dial,
        ))
    }
}

/// The `dst_*` labels of requests to `endpoint` of a Service: the
/// endpoint's own (its workload, pod, ServiceAccount) with the Service's
/// `dst_service` and `dst_namespace`.
fn endpoint_labels(resolution: &Resolution, endpoint: &Endpoint) -> Vec<(String, String)> {
    let mut labels = endpoint.labels.to_vec();
    for (key, value) in resolution.labels.iter() {
        match labels.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1 = value.clone(),
            None => labels.push((key.clone(), value.clone())),
        }
    }
    labels.sort();
    labels
}
