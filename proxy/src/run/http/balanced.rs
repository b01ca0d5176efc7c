//! Requests to a Service, balanced per request over its endpoints.
//!
//! The client connection keeps one upstream connection per endpoint it has
//! used (an [`Upstream`] each: mesh TLS or plaintext as destination says of
//! that endpoint) and asks the balancer for an endpoint on every request,
//! so a long-lived HTTP/2 or gRPC connection spreads its requests and
//! follows endpoints as they come and go. A request no endpoint could take
//! (connect or handshake failed, so it never left) is tried on up to
//! [`MAX_ATTEMPTS`] endpoints; one that may have reached a server is not
//! retried. When destination no longer answers for the address as a
//! Service with endpoints, requests go to the original destination, the
//! ClusterIP, in plaintext: kube-proxy's path, as without the mesh.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::super::connect::{Connector, Dial};
use super::super::context::TlsStatus;
use super::upstream::{SendFailed, Upstream, UpstreamError, Version};
use crate::balance::{Balancer, Target};
use crate::tls::Mesh;
use crate::tls::labels::PeerLabels;

/// Endpoints one request is offered to, at most.
pub const MAX_ATTEMPTS: usize = 3;

/// Where a connection's requests go.
pub enum Forward {
    /// One upstream: the original destination, or a pod.
    Direct(Upstream),
    /// A Service's endpoints.
    Balanced(Balanced),
}

/// Where one request goes, chosen before it is counted so that its
/// metrics name the endpoint that takes it.
pub enum Route {
    /// The connection's one upstream.
    Direct,
    /// This endpoint of the Service.
    Endpoint {
        /// The snapshot it was picked from.
        balancer: Arc<Balancer>,
        /// Its index in `balancer.targets()`.
        index: usize,
    },
    /// The original destination (the ClusterIP), in plaintext.
    Fallback,
}

impl Route {
    /// A request's TLS status and peer labels on this route, when they are
    /// not the connection's.
    pub fn peer(&self) -> Option<(TlsStatus, &PeerLabels)> {
        match self {
            Self::Direct => None,
            Self::Endpoint { balancer, index } => balancer.targets().get(*index).map(|t| {
                let tls = match t.tls {
                    Some(_) => TlsStatus::Mesh,
                    None => TlsStatus::None,
                };
                (tls, &t.labels)
            }),
            Self::Fallback => Some((TlsStatus::None, PeerLabels::none_ref())),
        }
    }
}

impl Forward {
    /// Where the next request goes.
    pub async fn route(&self) -> Route {
        match self {
            Self::Direct(_) => Route::Direct,
            Self::Balanced(balanced) => balanced.route().await,
        }
    }

    /// Forwards one request on `route`.
    pub async fn send(
        &self,
        req: Request<Incoming>,
        route: Route,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match self {
            Self::Direct(upstream) => upstream.send(req).await.map_err(|f| f.error),
            Self::Balanced(balanced) => balanced.send(req, route).await,
        }
    }
}

/// One client connection's upstreams to a Service.
pub struct Balanced {
    mesh: Arc<Mesh>,
    service: SocketAddr,
    version: Version,
    connect_timeout: Duration,
    endpoints: Mutex<Endpoints>,
    fallback: Upstream,
}

struct Endpoints {
    /// The snapshot the map was last pruned against.
    seen: Option<Arc<Balancer>>,
    by_addr: HashMap<SocketAddr, Arc<Upstream>>,
}

impl Balanced {
    /// Balances the requests to the Service at `service`, starting with the
    /// connection detection opened to `first` (the endpoint picked when the
    /// connection was accepted).
    pub fn new(
        mesh: Arc<Mesh>,
        service: SocketAddr,
        version: Version,
        first: Connector,
        dial: Dial,
        server_prefix: Bytes,
    ) -> Self {
        let connect_timeout = first.timeout();
        let mut by_addr = HashMap::new();
        by_addr.insert(
            first.target(),
            Arc::new(Upstream::new(first, version, dial, server_prefix)),
        );
        Self {
            mesh,
            service,
            version,
            connect_timeout,
            endpoints: Mutex::new(Endpoints {
                seen: None,
                by_addr,
            }),
            fallback: Upstream::idle(Connector::new(service, connect_timeout, None), version),
        }
    }

    fn endpoints(&self) -> MutexGuard<'_, Endpoints> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint the balancer picks for the next request, or the
    /// fallback when destination no longer answers with endpoints.
    pub async fn route(&self) -> Route {
        let Some(balancer) = self.mesh.service(self.service).await else {
            return Route::Fallback;
        };
        match balancer.pick_index(&[]) {
            Some(index) => Route::Endpoint { balancer, index },
            None => Route::Fallback,
        }
    }

    /// Forwards one request on `route`; if its endpoint cannot take it,
    /// to others of the same snapshot.
    pub async fn send(
        &self,
        req: Request<Incoming>,
        route: Route,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let (balancer, mut index) = match route {
            Route::Endpoint { balancer, index } => (balancer, index),
            Route::Direct | Route::Fallback => {
                return self.fallback.send(req).await.map_err(|f| f.error);
            }
        };
        let mut req = req;
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last_error = None;
        loop {
            let Some(target) = balancer.targets().get(index) else {
                // Every endpoint refused this request: the last one's reason.
                return Err(last_error.unwrap_or_else(|| {
                    UpstreamError::Connect(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the service has no endpoint left to try",
                    ))
                }));
            };
            let upstream = self.upstream(&balancer, target);
            // The latency estimate is the endpoint's, not the connect's: a
            // request that had to open (and handshake) a connection counts
            // as in flight but its time is not observed.
            let warm = upstream.is_connected();
            let in_flight = target.load.start();
            match upstream.send(req).await {
                Ok(response) => {
                    if warm {
                        in_flight.responded();
                    }
                    return Ok(response);
                }
                Err(SendFailed {
                    error,
                    unsent: Some(unsent),
                }) if tried.len() + 1 < MAX_ATTEMPTS => {
                    in_flight.failed();
                    tracing::debug!(service = %self.service, endpoint = %target.addr, %error, "endpoint refused the request; trying another");
                    tried.push(target.addr);
                    last_error = Some(error);
                    req = unsent;
                    index = balancer.pick_index(&tried).unwrap_or(usize::MAX);
                }
                Err(failed) => {
                    in_flight.failed();
                    return Err(failed.error);
                }
            }
        }
    }

    /// This connection's upstream to `target`, opened on first use; the
    /// upstreams of endpoints the Service no longer has are dropped.
    fn upstream(&self, balancer: &Arc<Balancer>, target: &Target) -> Arc<Upstream> {
        let mut endpoints = self.endpoints();
        if !endpoints
            .seen
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, balancer))
        {
            endpoints.by_addr.retain(|addr, _| balancer.contains(*addr));
            endpoints.seen = Some(balancer.clone());
        }
        endpoints
            .by_addr
            .entry(target.addr)
            .or_insert_with(|| {
                let connector =
                    Connector::new(target.addr, self.connect_timeout, target.tls.clone());
                Arc::new(Upstream::idle(connector, self.version))
            })
            .clone()
    }
}
