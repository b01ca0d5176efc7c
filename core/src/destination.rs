//! Destination's answer for one address, as it goes over the wire: one
//! JSON object for `/v1/resolve`, one line per change for `/v1/watch`.
//! weft-control writes it and the proxy reads it, from this one
//! definition (docs/architecture.md, "Destination").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Service a ClusterIP belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    /// The Service's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// What destination says about one address.
///
/// For an address no pod has, only `addr` and `meshed: false`. For a pod's
/// address, also `opaque` and `labels`; and when the pod is meshed on that
/// port, `identity` and `proxy_port`. For a Service's ClusterIP, `meshed:
/// false` (nothing terminates mesh TLS on a ClusterIP), `service`, `labels`
/// naming the Service, and `endpoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The address asked about, canonical (`10.0.0.5:80`, `[fd00::5]:80`).
    /// Always written; a reader that does not need it may find it absent.
    #[serde(default)]
    pub addr: String,
    /// A proxy is there and terminates mesh TLS on this port.
    pub meshed: bool,
    /// The SPIFFE identity the peer must present, when meshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Traffic to this port skips protocol detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<bool>,
    /// The peer proxy's inbound port, when meshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_port: Option<u16>,
    /// The Service whose ClusterIP the address is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Metric labels for the peer (`dst_namespace`, `dst_pod`, ...; for a
    /// Service, `dst_namespace` and `dst_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// For a Service, the answer for each ready endpoint of the port asked
    /// about, sorted by address; never nested further.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<Answer>>,
}
