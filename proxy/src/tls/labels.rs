//! The metric labels that name a connection's peer: `client_id` (inbound)
//! or `server_id` (outbound) with mesh TLS, and on outbound the peer
//! workload's `dst_*` labels from destination.
//!
//! Peers come from traffic, so their label sets are capped like
//! authorities: the first [`MAX_PEERS`] distinct sets keep their own
//! series, later ones share `client_id="other"` / `server_id="other"`
//! without workload labels.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder};
use weft_certs::SpiffeId;

use crate::run::bounded::Bounded;
use crate::run::context::Direction;

/// How many distinct peer label sets get their own series.
pub const MAX_PEERS: usize = 100;

/// The label value of peers past the cap.
const OTHER: &str = "other";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PeerSet {
    direction: Direction,
    id: Option<String>,
    workload: Vec<(String, String)>,
}

/// The peer labels of one connection; empty for an unknown plaintext peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerLabels(Option<Arc<PeerSet>>);

impl PeerLabels {
    /// No peer labels.
    pub fn none() -> Self {
        Self(None)
    }

    /// No peer labels, borrowed.
    pub fn none_ref() -> &'static Self {
        static NONE: PeerLabels = PeerLabels(None);
        &NONE
    }

    /// Whether no label is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl EncodeLabelSet for PeerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        let Some(set) = &self.0 else {
            return Ok(());
        };
        if let Some(id) = &set.id {
            let key = match set.direction {
                Direction::Inbound => "client_id",
                Direction::Outbound => "server_id",
            };
            (key, id.as_str()).encode(encoder.encode_label())?;
        }
        for (key, value) in &set.workload {
            (key.as_str(), value.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Makes [`PeerLabels`], capped at [`MAX_PEERS`] distinct sets.
#[derive(Debug)]
pub struct PeerLabeler {
    seen: Bounded<PeerSet>,
}

impl Default for PeerLabeler {
    fn default() -> Self {
        Self {
            seen: Bounded::new(MAX_PEERS),
        }
    }
}

impl PeerLabeler {
    /// The labels of a peer with identity `id` (mesh TLS) and, outbound,
    /// the `dst_*` labels destination gave (sorted by key).
    pub fn labels(
        &self,
        direction: Direction,
        id: Option<&SpiffeId>,
        workload: &[(String, String)],
    ) -> PeerLabels {
        if id.is_none() && workload.is_empty() {
            return PeerLabels::none();
        }
        let set = PeerSet {
            direction,
            id: id.map(ToString::to_string),
            workload: workload.to_vec(),
        };
        if self.seen.admit(&set) {
            return PeerLabels(Some(Arc::new(set)));
        }
        PeerLabels(Some(Arc::new(PeerSet {
            direction,
            id: Some(OTHER.to_owned()),
            workload: Vec::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    fn encode(labels: &PeerLabels) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        let family = Family::<PeerLabels, Counter>::default();
        registry.register("probe", "test", family.clone());
        family.get_or_create(labels).inc();
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }

    #[test]
    fn inbound_names_the_client_and_outbound_the_server() -> Result<(), Box<dyn std::error::Error>>
    {
        let labeler = PeerLabeler::default();
        let web = SpiffeId::new("cluster.local", "shop", "web")?;
        let inbound = labeler.labels(Direction::Inbound, Some(&web), &[]);
        assert!(
            encode(&inbound)?
                .contains(r#"probe_total{client_id="spiffe://cluster.local/ns/shop/sa/web"} 1"#)
        );
        let workload = [
            ("dst_namespace".to_owned(), "shop".to_owned()),
            ("dst_pod".to_owned(), "web-1".to_owned()),
        ];
        let outbound = labeler.labels(Direction::Outbound, Some(&web), &workload);
        assert!(encode(&outbound)?.contains(
            r#"probe_total{server_id="spiffe://cluster.local/ns/shop/sa/web",dst_namespace="shop",dst_pod="web-1"} 1"#
        ));
        assert!(labeler.labels(Direction::Inbound, None, &[]).is_empty());
        Ok(())
    }

    #[test]
    fn peers_past_the_cap_share_other() -> Result<(), Box<dyn std::error::Error>> {
        let labeler = PeerLabeler::default();
        for i in 0..MAX_PEERS {
            let id = SpiffeId::new("td", "ns", &format!("sa-{i}"))?;
            let labels = labeler.labels(Direction::Outbound, Some(&id), &[]);
            assert!(encode(&labels)?.contains(&format!("sa-{i}")));
        }
        let late = SpiffeId::new("td", "ns", "late")?;
        let labels = labeler.labels(Direction::Outbound, Some(&late), &[]);
        assert!(encode(&labels)?.contains(r#"probe_total{server_id="other"} 1"#));
        Ok(())
    }
}
