//! Destination's answer for one address (a line of `GET /v1/watch?addr=IP:PORT`),
//! and what the proxy keeps of it: the identity to demand, whether the
//! port is opaque, and the peer workload's metric labels; for a Service's
//! ClusterIP, the same for each of its ready endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use weft_certs::SpiffeId;

/// At most this many `dst_*` labels are kept from one answer.
pub const MAX_LABELS: usize = 16;
/// Longest label value kept (a DNS subdomain, the longest Kubernetes name).
pub const MAX_LABEL_VALUE: usize = 253;
/// At most this many endpoints are kept from one Service answer
/// (destination sends at most as many).
pub const MAX_ENDPOINTS: usize = 1_000;

/// The JSON destination answers with, as weft-control writes it (fields
/// the proxy does not use, such as `addr` and `proxy_port`, are ignored).
pub use weft_core::destination::Answer;

/// What the proxy does with an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The identity a meshed peer must present; `None`: plaintext.
    pub identity: Option<Arc<SpiffeId>>,
    /// Whether protocol detection is skipped for it.
    pub opaque: bool,
    /// The peer workload's `dst_*` labels, sorted by key; for a Service,
    /// `dst_namespace` and `dst_service`.
    pub labels: Arc<[(String, String)]>,
    /// The address is a Service's ClusterIP: its endpoints, which the
    /// proxy balances over itself.
    pub service: Option<Arc<Service>>,
}

/// A Service behind a ClusterIP, as the proxy balances over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name`, for logs.
    pub name: String,
    /// The ready endpoints, sorted by address; may be empty (the proxy then
    /// sends the connection to the ClusterIP, kube-proxy's path).
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The pod address traffic goes to.
    pub addr: SocketAddr,
    /// The identity its proxy must present; `None`: plaintext.
    pub identity: Option<Arc<SpiffeId>>,
    /// Whether protocol detection is skipped for it.
    pub opaque: bool,
    /// Its workload's `dst_*` labels, sorted by key.
    pub labels: Arc<[(String, String)]>,
}

/// Why an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not the JSON destination sends.
    #[error("destination's answer does not parse: {0}")]
    Json(String),
    /// Meshed without an identity.
    #[error("destination says meshed but names no identity")]
    NoIdentity,
    /// A Service endpoint's address is not `IP:PORT`.
    #[error("destination's endpoint address {0:?} is not IP:PORT")]
    BadAddr(String),
    /// The identity is not a weft SPIFFE ID of our trust domain.
    #[error("destination's identity {identity:?} is not usable: {reason}")]
    BadIdentity {
        /// The identity as sent.
        identity: String,
        /// Why.
        reason: String,
    },
}

impl Resolution {
    /// Reads destination's JSON body for an address in `trust_domain`.
    pub fn from_json(body: &[u8], trust_domain: &str) -> Result<Self, AnswerError> {
        let answer: Answer =
            serde_json::from_slice(body).map_err(|e| AnswerError::Json(e.to_string()))?;
        Self::from_answer(answer, trust_domain)
    }

    /// What the proxy keeps of `answer`.
    ///
    /// A Service endpoint whose own answer cannot be used is left out (and
    /// logged): the others still serve, and leaving it out never sends
    /// plaintext where mesh TLS was due.
    pub fn from_answer(answer: Answer, trust_domain: &str) -> Result<Self, AnswerError> {
        let service = answer.service.map(|service| {
            let name = format!("{}/{}", service.namespace, service.name);
            let mut endpoints: Vec<Endpoint> = answer
                .endpoints
                .unwrap_or_default()
                .into_iter()
                .take(MAX_ENDPOINTS)
                .filter_map(|e| match endpoint(&e, trust_domain) {
                    Ok(endpoint) => Some(endpoint),
                    Err(error) => {
                        tracing::warn!(service = %name, endpoint = %e.addr, %error, "endpoint left out");
                        None
                    }
                })
                .collect();
            endpoints.sort_by_key(|e| e.addr);
            endpoints.dedup_by_key(|e| e.addr);
            Arc::new(Service { name, endpoints })
        });
        // The ClusterIP itself has no proxy, whatever `meshed` says.
        let identity = match service {
            Some(_) => None,
            None => identity(answer.meshed, answer.identity.as_deref(), trust_domain)?,
        };
        Ok(Self {
            identity,
            opaque: answer.opaque.unwrap_or(false),
            labels: labels(answer.labels),
            service,
        })
    }
}

fn endpoint(e: &Answer, trust_domain: &str) -> Result<Endpoint, AnswerError> {
    let addr = e
        .addr
        .parse::<SocketAddr>()
        .map_err(|_| AnswerError::BadAddr(e.addr.chars().take(64).collect()))?;
    Ok(Endpoint {
        addr: SocketAddr::new(addr.ip().to_canonical(), addr.port()),
        identity: identity(e.meshed, e.identity.as_deref(), trust_domain)?,
        opaque: e.opaque.unwrap_or(false),
        labels: labels(e.labels.clone()),
    })
}

fn identity(
    meshed: bool,
    text: Option<&str>,
    trust_domain: &str,
) -> Result<Option<Arc<SpiffeId>>, AnswerError> {
    if !meshed {
        return Ok(None);
    }
    let text = text.ok_or(AnswerError::NoIdentity)?;
    let bad = |reason: String| AnswerError::BadIdentity {
        identity: text.to_owned(),
        reason,
    };
    let id = SpiffeId::from_str(text).map_err(|e| bad(e.to_string()))?;
    // Mesh TLS names peers within one trust domain (tls::peer).
    if id.trust_domain() != trust_domain {
        return Err(bad(format!("not in the trust domain {trust_domain}")));
    }
    Ok(Some(Arc::new(id)))
}

fn labels(labels: Option<BTreeMap<String, String>>) -> Arc<[(String, String)]> {
    labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, value)| usable_label(key, value))
        .take(MAX_LABELS)
        .collect()
}

// Only peer-workload labels, in Prometheus's label-name grammar; `dst_port`
// is the proxy's own label and must not appear twice.
fn usable_label(key: &str, value: &str) -> bool {
    key.starts_with("dst_")
        && key != "dst_port"
        && key.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && value.len() <= MAX_LABEL_VALUE
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "cluster.local";

    #[test]
    fn a_meshed_answer_gives_identity_opaque_and_labels() -> Result<(), AnswerError> {
        let body = br#"{"addr":"10.0.0.5:3306","meshed":true,
            "identity":"spiffe://cluster.local/ns/shop/sa/web","opaque":true,"proxy_port":4143,
            "labels":{"dst_pod":"web-1","dst_namespace":"shop"}}"#;
        let resolution = Resolution::from_json(body, TD)?;
        assert_eq!(
            resolution.identity.as_deref().map(ToString::to_string),
            Some("spiffe://cluster.local/ns/shop/sa/web".to_owned())
        );
        assert!(resolution.opaque);
        assert_eq!(
            &resolution.labels[..],
            &[
                ("dst_namespace".to_owned(), "shop".to_owned()),
                ("dst_pod".to_owned(), "web-1".to_owned())
            ]
        );
        Ok(())
    }

    #[test]
    fn an_unknown_address_is_plaintext_without_labels() -> Result<(), AnswerError> {
        let resolution = Resolution::from_json(br#"{"addr":"10.0.0.9:80","meshed":false}"#, TD)?;
        assert_eq!(resolution, Resolution::default());
        Ok(())
    }

    #[test]
    fn unusable_answers_are_errors() {
        for (body, what) in [
            (&b"not json"[..], "garbage"),
            (br#"{"meshed":true}"#, "no identity"),
            (br#"{"meshed":true,"identity":"web"}"#, "not a SPIFFE ID"),
            (
                br#"{"meshed":true,"identity":"spiffe://elsewhere/ns/a/sa/b"}"#,
                "foreign trust domain",
            ),
            (br#"{"meshed":"yes"}"#, "wrong type"),
        ] {
            assert!(Resolution::from_json(body, TD).is_err(), "{what}");
        }
    }

    #[test]
    fn a_service_answer_gives_its_endpoints_sorted_and_usable_only() -> Result<(), AnswerError> {
        let body = br#"{"addr":"10.0.0.20:8080","meshed":false,
            "service":{"name":"voting-svc","namespace":"emojivoto"},
            "labels":{"dst_namespace":"emojivoto","dst_service":"voting-svc"},
            "endpoints":[
              {"addr":"10.89.0.9:8080","meshed":false},
              {"addr":"10.89.0.7:8080","meshed":true,"opaque":false,"proxy_port":4143,
               "identity":"spiffe://cluster.local/ns/emojivoto/sa/voting",
               "labels":{"dst_deployment":"voting","dst_pod":"voting-1"}},
              {"addr":"10.89.0.8:8080","meshed":true,"identity":"spiffe://elsewhere/ns/a/sa/b"},
              {"addr":"nonsense","meshed":false},
              {"addr":"10.89.0.7:8080","meshed":false}
            ]}"#;
        let resolution = Resolution::from_json(body, TD)?;
        assert_eq!(resolution.identity, None);
        assert_eq!(
            &resolution.labels[..],
            &[
                ("dst_namespace".to_owned(), "emojivoto".to_owned()),
                ("dst_service".to_owned(), "voting-svc".to_owned())
            ]
        );
        let service = resolution.service.expect("a service");
        assert_eq!(service.name, "emojivoto/voting-svc");
        let addrs: Vec<String> = service
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        // The foreign identity and the bad address are left out; the
        // duplicate keeps its first (sorted, stable) entry.
        assert_eq!(addrs, ["10.89.0.7:8080", "10.89.0.9:8080"]);
        let first = &service.endpoints[0];
        assert_eq!(
            first
                .identity
                .as_deref()
                .map(ToString::to_string)
                .as_deref(),
            Some("spiffe://cluster.local/ns/emojivoto/sa/voting")
        );
        assert_eq!(
            &first.labels[..],
            &[
                ("dst_deployment".to_owned(), "voting".to_owned()),
                ("dst_pod".to_owned(), "voting-1".to_owned())
            ]
        );
        assert_eq!(service.endpoints[1].identity, None);
        Ok(())
    }

    #[test]
    fn a_service_without_endpoints_is_kept_empty() -> Result<(), AnswerError> {
        let body = br#"{"addr":"10.0.0.20:80","meshed":false,
            "service":{"name":"web-svc","namespace":"emojivoto"},"endpoints":[]}"#;
        let resolution = Resolution::from_json(body, TD)?;
        assert!(resolution.service.is_some_and(|s| s.endpoints.is_empty()));
        Ok(())
    }

    #[test]
    fn only_well_formed_workload_labels_are_kept() -> Result<(), AnswerError> {
        let long = "x".repeat(MAX_LABEL_VALUE + 1);
        let body = serde_json::json!({
            "meshed": false,
            "labels": {
                "dst_namespace": "shop",
                "dst_port": "80",
                "dst_Bad": "x",
                "app": "web",
                "dst_pod": long,
            }
        })
        .to_string();
        let resolution = Resolution::from_json(body.as_bytes(), TD)?;
        assert_eq!(
            &resolution.labels[..],
            &[("dst_namespace".to_owned(), "shop".to_owned())]
        );
        Ok(())
    }
}
