//! One accepted connection, from detection to the end: choose the protocol
//! (and, with mesh TLS, how to dial and what the peer is), account the
//! connection in the TCP metrics, then hand it to the HTTP or the opaque
//! TCP layer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::Shared;
use super::connect::{Connector, Dial};
use super::context::{ConnContext, Direction, Protocol, TlsStatus};
use super::detect::{self, Detection};
use super::http;
use super::http::balanced::{Balanced, Forward};
use super::http::service::ProxyService;
use super::http::upstream::{Upstream, Version};
use super::io::{CountingIo, PrefixedIo};
use super::tcp;
use crate::tls::io::ClientIo;

/// Proxies one accepted connection until it closes.
pub async fn handle(mut stream: TcpStream, mut ctx: ConnContext, shared: Arc<Shared>) {
    let mesh = shared.mesh.clone();
    // Outbound with the mesh on: destination decides plaintext or mesh TLS
    // (and may mark the port opaque) before anything is dialled.
    // A Service's ClusterIP gets its balancer and an endpoint picked for
    // this first dial (`ctx.target`).
    let (tls, mut opaque, service) = match (&mesh, ctx.direction) {
        (Some(mesh), Direction::Outbound) => {
            let outbound = mesh.outbound(&mut ctx).await;
            (outbound.tls, outbound.opaque, outbound.service)
        }
        _ => (None, false, None),
    };
    let opaque_port = opaque || shared.opaque_ports.contains(ctx.orig_dst.port());
    // Inbound with the mesh on, even an opaque port is looked at: a mesh
    // ClientHello must be terminated before the bytes inside go opaque.
    let inbound_mesh = mesh.is_some() && ctx.direction == Direction::Inbound;
    opaque = opaque_port && !inbound_mesh;

    // Connect upstream now: a server that speaks first is heard during
    // detection, and an HTTP client's first request finds the connection up.
    // Unless identity is required: then the application sees no connection
    // until the client has proved who it is (the mesh starts the dial).
    let connector = Connector::new(ctx.target, shared.connect_timeout, tls);
    let authenticate_first = inbound_mesh && mesh.as_ref().is_some_and(|m| m.requires_identity());
    let dial = if authenticate_first {
        Dial::Deferred(connector.clone())
    } else {
        connector.dial()
    };
    let (detection, dial) = if opaque {
        let detection = Detection {
            protocol: Protocol::Opaque,
            client_prefix: Bytes::new(),
            server_prefix: Bytes::new(),
            reason: "opaque port",
        };
        (detection, dial)
    } else {
        match detect::detect(&mut stream, dial, shared.detect_timeouts).await {
            Ok(found) => found,
            Err(e) => {
                // Reset or error before a protocol was known: nothing to forward.
                let _tcp = shared
                    .metrics
                    .open_connection(shared.metrics.tcp_labels(&ctx));
                tracing::debug!(client = %ctx.client, error = %e, "connection failed during detection");
                return;
            }
        }
    };
    let (client, detection, dial) = match &mesh {
        Some(mesh) if inbound_mesh => {
            let timeouts = shared.detect_timeouts;
            match mesh
                .inbound(stream, detection, dial, &mut ctx, timeouts, opaque_port)
                .await
            {
                Some(taken) => taken,
                None => return,
            }
        }
        _ => (ClientIo::Plain(stream), detection, dial),
    };
    // The application's TLS inside mesh TLS is still a mesh connection.
    if detection.protocol == Protocol::Tls && ctx.tls == TlsStatus::None {
        ctx.tls = TlsStatus::Passthrough;
    }
    tracing::debug!(
        direction = ctx.direction.as_str(),
        client = %ctx.client,
        target = %ctx.target,
        protocol = ?detection.protocol,
        tls = ctx.tls.as_str(),
        peer = ctx.peer_identity.as_deref().unwrap_or(""),
        reason = detection.reason,
        "detected"
    );

    let tcp = shared
        .metrics
        .open_connection(shared.metrics.tcp_labels(&ctx));
    tcp.read.inc_by(detection.client_prefix.len() as u64);
    match detection.protocol {
        Protocol::Http1 | Protocol::Http2 => {
            let version = if detection.protocol == Protocol::Http1 {
                Version::Http1
            } else {
                Version::Http2
            };
            let io = CountingIo::new(client, tcp.read.clone(), tcp.written.clone());
            let io = PrefixedIo::new(detection.client_prefix, io);
            let upstream = match (&mesh, service) {
                (Some(mesh), Some(_)) => Forward::Balanced(Balanced::new(
                    mesh.clone(),
                    ctx.orig_dst,
                    version,
                    connector,
                    dial,
                    detection.server_prefix,
                )),
                _ => Forward::Direct(Upstream::new(
                    connector,
                    version,
                    dial,
                    detection.server_prefix,
                )),
            };
            let service =
                ProxyService::new(ctx, upstream, shared.metrics.clone(), shared.drain.clone());
            http::serve(io, version, service, shared.drain.clone()).await;
        }
        Protocol::Tls | Protocol::Opaque => {
            // Balanced per connection: the endpoint carries it while it lasts.
            let _in_flight = service.as_ref().map(|(_, load)| load.start());
            let upstream = match dial.finish().await {
                Ok(upstream) => upstream,
                Err(e) => {
                    tracing::info!(target = %ctx.target, error = %e, "upstream connect failed; resetting client");
                    // A reset tells the client what a refused connect would have.
                    if let Err(e) = client.set_zero_linger() {
                        tracing::debug!(error = %e, "could not set SO_LINGER");
                    }
                    return;
                }
            };
            let io = CountingIo::new(client, tcp.read.clone(), tcp.written.clone());
            match tcp::forward(
                io,
                detection.client_prefix,
                upstream,
                detection.server_prefix,
            )
            .await
            {
                Ok((up, down)) => tracing::debug!(up, down, "opaque connection closed"),
                Err(e) => tracing::debug!(error = %e, "opaque connection failed"),
            }
        }
    }
}
