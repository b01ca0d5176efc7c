//! Destination's answer for one address (a line of `GET /v1/watch?addr=IP:PORT`),
//! and what the proxy keeps of it: the identity to demand, whether the
//! port is opaque, and the peer workload's metric labels.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use weft_certs::SpiffeId;

/// At most this many `dst_*` labels are kept from one answer.
pub const MAX_LABELS: usize = 16;
/// Longest label value kept (a DNS subdomain, the longest Kubernetes name).
pub const MAX_LABEL_VALUE: usize = 253;

/// The JSON destination answers with (fields the proxy does not use, such
/// as `addr` and `proxy_port`, are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    /// A proxy is there and terminates mesh TLS on this port.
    pub meshed: bool,
    /// The SPIFFE identity the peer must present, when meshed.
    #[serde(default)]
    pub identity: Option<String>,
    /// Traffic to this port skips protocol detection.
    #[serde(default)]
    pub opaque: Option<bool>,
    /// Metric labels for the peer (`dst_namespace`, `dst_pod`, ...).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// What the proxy does with an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The identity a meshed peer must present; `None`: plaintext.
    pub identity: Option<Arc<SpiffeId>>,
    /// Whether protocol detection is skipped for it.
    pub opaque: bool,
    /// The peer workload's `dst_*` labels, sorted by key.
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
    pub fn from_answer(answer: Answer, trust_domain: &str) -> Result<Self, AnswerError> {
        let identity = if answer.meshed {
            let text = answer.identity.ok_or(AnswerError::NoIdentity)?;
            let bad = |reason: String| AnswerError::BadIdentity {
                identity: text.clone(),
                reason,
            };
            let id = SpiffeId::from_str(&text).map_err(|e| bad(e.to_string()))?;
            // Mesh TLS names peers within one trust domain (tls::peer).
            if id.trust_domain() != trust_domain {
                return Err(bad(format!("not in the trust domain {trust_domain}")));
            }
            Some(Arc::new(id))
        } else {
            None
        };
        let labels = answer
            .labels
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, value)| usable_label(key, value))
            .take(MAX_LABELS)
            .collect();
        Ok(Self {
            identity,
            opaque: answer.opaque.unwrap_or(false),
            labels,
        })
    }
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
