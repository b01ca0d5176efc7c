//! The golden metrics (DESIGN.md) and their label sets.
//!
//! Names are exactly the ones DESIGN.md lists; prometheus-client appends
//! `_total` to counters itself, so counters register without it. Label values
//! that come from traffic (authority, destination port) are capped by
//! [`Bounded`]; `client_id`/`server_id` and the peer workload labels come
//! from mesh TLS and destination ([`PeerLabels`], capped the same way).

use std::fmt;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::bounded::Bounded;
use super::context::{ConnContext, Direction, TlsStatus};
use super::http::classify::Classification;
use crate::tls::labels::PeerLabels;

/// How many distinct authorities get their own series.
pub const MAX_AUTHORITIES: usize = 100;
/// How many distinct destination ports get their own series.
pub const MAX_PORTS: usize = 100;

// Milliseconds; sub-millisecond buckets because a proxy hop on one node
// costs well under one.
const LATENCY_BUCKETS_MS: [f64; 18] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0,
    5_000.0, 10_000.0, 30_000.0, 60_000.0,
];

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

impl EncodeLabelValue for TlsStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

impl EncodeLabelValue for Classification {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// A destination port, or `other` past the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortLabel {
    /// A port with its own series.
    Port(u16),
    /// Any port past the cap.
    Other,
}

impl EncodeLabelValue for PortLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        match self {
            Self::Port(port) => EncodeLabelValue::encode(port, encoder),
            Self::Other => fmt::Write::write_str(encoder, "other"),
        }
    }
}

/// Labels of the TCP metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TcpLabels {
    /// inbound / outbound.
    pub direction: Direction,
    /// false / passthrough / true (mesh TLS).
    pub tls: TlsStatus,
    /// `client_id` / `server_id` and `dst_*`, when known.
    #[prometheus(flatten)]
    pub peer: PeerLabels,
    /// The original destination port.
    pub dst_port: PortLabel,
}

/// Labels of `request_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// inbound / outbound.
    pub direction: Direction,
    /// false / passthrough / true (mesh TLS).
    pub tls: TlsStatus,
    /// `client_id` / `server_id` and `dst_*`, when known.
    #[prometheus(flatten)]
    pub peer: PeerLabels,
    /// The original destination port.
    pub dst_port: PortLabel,
    /// The request's authority (or Host), capped.
    pub authority: String,
}

/// Labels of `response_latency_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LatencyLabels {
    /// The request's labels.
    #[prometheus(flatten)]
    pub request: RequestLabels,
    /// The HTTP status.
    pub status_code: u16,
}

/// Labels of `response_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResponseLabels {
    /// The request's labels.
    #[prometheus(flatten)]
    pub request: RequestLabels,
    /// The HTTP status.
    pub status_code: u16,
    /// The gRPC status, empty when the response carried none.
    pub grpc_status: Option<u32>,
    /// success / failure.
    pub classification: Classification,
}

type HistogramFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

/// Every metric family the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    latency: HistogramFamily,
    tcp_open_connections: Family<TcpLabels, Gauge>,
    tcp_open: Family<TcpLabels, Counter>,
    tcp_close: Family<TcpLabels, Counter>,
    tcp_read_bytes: Family<TcpLabels, Counter>,
    tcp_write_bytes: Family<TcpLabels, Counter>,
    ports: Bounded<u16>,
    authorities: Bounded<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family, without a prefix, as DESIGN.md names them.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        let responses = Family::default();
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS_MS.iter().copied()));
        let tcp_open_connections = Family::default();
        let tcp_open = Family::default();
        let tcp_close = Family::default();
        let tcp_read_bytes = Family::default();
        let tcp_write_bytes = Family::default();
        registry.register("request", "HTTP requests received", requests.clone());
        registry.register("response", "HTTP responses completed", responses.clone());
        registry.register(
            "response_latency_ms",
            "Time from receiving a request to receiving its response headers, in milliseconds",
            latency.clone(),
        );
        registry.register(
            "tcp_open_connections",
            "Connections currently open",
            tcp_open_connections.clone(),
        );
        registry.register("tcp_open", "Connections opened", tcp_open.clone());
        registry.register("tcp_close", "Connections closed", tcp_close.clone());
        registry.register(
            "tcp_read_bytes",
            "Bytes read from the accepted connection's peer",
            tcp_read_bytes.clone(),
        );
        registry.register(
            "tcp_write_bytes",
            "Bytes written to the accepted connection's peer",
            tcp_write_bytes.clone(),
        );
        Self {
            registry,
            requests,
            responses,
            latency,
            tcp_open_connections,
            tcp_open,
            tcp_close,
            tcp_read_bytes,
            tcp_write_bytes,
            ports: Bounded::new(MAX_PORTS),
            authorities: Bounded::new(MAX_AUTHORITIES),
        }
    }

    /// The registry, for families registered beside the golden metrics
    /// (identity and mesh TLS).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The destination port label for `port`, capped.
    pub fn port_label(&self, port: u16) -> PortLabel {
        if self.ports.admit(&port) {
            PortLabel::Port(port)
        } else {
            PortLabel::Other
        }
    }

    /// TCP labels of a connection.
    pub fn tcp_labels(&self, ctx: &ConnContext) -> TcpLabels {
        TcpLabels {
            direction: ctx.direction,
            tls: ctx.tls,
            peer: ctx.peer_labels.clone(),
            dst_port: self.port_label(ctx.orig_dst.port()),
        }
    }

    /// Request labels for a request to `authority` on a connection.
    pub fn request_labels(&self, ctx: &ConnContext, authority: Option<&str>) -> RequestLabels {
        let authority = match authority {
            Some(a) if self.authorities.admit(a) => a.to_owned(),
            Some(_) => "other".to_owned(),
            None => String::new(),
        };
        RequestLabels {
            direction: ctx.direction,
            tls: ctx.tls,
            peer: ctx.peer_labels.clone(),
            dst_port: self.port_label(ctx.orig_dst.port()),
            authority,
        }
    }

    /// Counts a request.
    pub fn request(&self, labels: &RequestLabels) {
        self.requests.get_or_create(labels).inc();
    }

    /// Records the latency to response headers.
    pub fn latency(&self, labels: &LatencyLabels, millis: f64) {
        self.latency.get_or_create(labels).observe(millis);
    }

    /// Counts a finished (or failed) response.
    pub fn response(&self, labels: &ResponseLabels) {
        self.responses.get_or_create(labels).inc();
    }

    /// The `request_total` series of `labels`, kept by a connection so that
    /// its requests skip the label lookup.
    pub fn request_counter(&self, labels: &RequestLabels) -> Counter {
        self.requests.get_or_create_owned(labels)
    }

    /// The `response_latency_ms` series of `labels`, to keep.
    pub fn latency_histogram(&self, labels: &LatencyLabels) -> Histogram {
        self.latency.get_or_create_owned(labels)
    }

    /// The `response_total` series of `labels`, to keep.
    pub fn response_counter(&self, labels: &ResponseLabels) -> Counter {
        self.responses.get_or_create_owned(labels)
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn open_connection(&self, labels: TcpLabels) -> TcpConnMetrics {
        self.tcp_open.get_or_create(&labels).inc();
        let open = self.tcp_open_connections.get_or_create_owned(&labels);
        open.inc();
        TcpConnMetrics {
            read: self.tcp_read_bytes.get_or_create_owned(&labels),
            written: self.tcp_write_bytes.get_or_create_owned(&labels),
            close: self.tcp_close.get_or_create_owned(&labels),
            open,
        }
    }
}

/// One open connection's metric handles; dropping it counts the close.
#[derive(Debug)]
pub struct TcpConnMetrics {
    /// Bytes read from the peer.
    pub read: Counter,
    /// Bytes written to the peer.
    pub written: Counter,
    close: Counter,
    open: Gauge,
}

impl Drop for TcpConnMetrics {
    fn drop(&mut self) {
        self.open.dec();
        self.close.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn ctx() -> ConnContext {
        ConnContext {
            direction: Direction::Inbound,
            client: SocketAddr::from(([10, 0, 0, 1], 40000)),
            orig_dst: SocketAddr::from(([10, 0, 0, 2], 8080)),
            target: SocketAddr::from(([10, 0, 0, 2], 8080)),
            tls: TlsStatus::None,
            peer_identity: None,
            peer_labels: PeerLabels::none(),
        }
    }

    #[test]
    fn exposition_names_match_design() -> Result<(), fmt::Error> {
        let metrics = Metrics::new();
        let ctx = ctx();
        let request = metrics.request_labels(&ctx, Some("web:8080"));
        metrics.request(&request);
        metrics.latency(
            &LatencyLabels {
                request: request.clone(),
                status_code: 200,
            },
            0.3,
        );
        metrics.response(&ResponseLabels {
            request,
            status_code: 200,
            grpc_status: None,
            classification: Classification::Success,
        });
        let conn = metrics.open_connection(metrics.tcp_labels(&ctx));
        conn.read.inc_by(10);
        conn.written.inc_by(20);
        let text = metrics.encode()?;
        for line in [
            r#"request_total{direction="inbound",tls="false",dst_port="8080",authority="web:8080"} 1"#,
            r#"response_total{direction="inbound",tls="false",dst_port="8080",authority="web:8080",status_code="200",grpc_status="",classification="success"} 1"#,
            r#"response_latency_ms_bucket{direction="inbound",tls="false",dst_port="8080",authority="web:8080",status_code="200",le="0.5"} 1"#,
            r#"tcp_open_connections{direction="inbound",tls="false",dst_port="8080"} 1"#,
            r#"tcp_open_total{direction="inbound",tls="false",dst_port="8080"} 1"#,
            r#"tcp_read_bytes_total{direction="inbound",tls="false",dst_port="8080"} 10"#,
            r#"tcp_write_bytes_total{direction="inbound",tls="false",dst_port="8080"} 20"#,
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        drop(conn);
        let text = metrics.encode()?;
        assert!(
            text.contains(r#"tcp_close_total{direction="inbound",tls="false",dst_port="8080"} 1"#)
        );
        assert!(text.contains(
            r#"tcp_open_connections{direction="inbound",tls="false",dst_port="8080"} 0"#
        ));
        Ok(())
    }

    #[test]
    fn authorities_past_the_cap_share_other() {
        let metrics = Metrics::new();
        let ctx = ctx();
        for i in 0..MAX_AUTHORITIES {
            let labels = metrics.request_labels(&ctx, Some(&format!("svc-{i}")));
            assert_eq!(labels.authority, format!("svc-{i}"));
        }
        let labels = metrics.request_labels(&ctx, Some("one-too-many"));
        assert_eq!(labels.authority, "other");
        let labels = metrics.request_labels(&ctx, Some("svc-0"));
        assert_eq!(labels.authority, "svc-0");
    }
}
