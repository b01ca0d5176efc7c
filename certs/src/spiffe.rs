//! The mesh identity of a workload: the SPIFFE ID
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, carried
//! as the only URI SAN of a proxy's certificate.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The longest trust domain accepted (the SPIFFE spec's limit).
const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Kubernetes namespace names are DNS labels.
const MAX_NAMESPACE_LEN: usize = 63;
/// ServiceAccount names are DNS subdomains.
const MAX_SERVICE_ACCOUNT_LEN: usize = 253;

/// A workload's SPIFFE identity, derived from its Kubernetes ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// The identity of ServiceAccount `service_account` in `namespace`, in
    /// `trust_domain`; each part is checked against what Kubernetes (and
    /// SPIFFE, for the trust domain) allows.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<SpiffeId, Error> {
        check_trust_domain(trust_domain)?;
        check_name(namespace, MAX_NAMESPACE_LEN, false, "a namespace")?;
        check_name(
            service_account,
            MAX_SERVICE_ACCOUNT_LEN,
            true,
            "a ServiceAccount",
        )?;
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The ServiceAccount's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The ServiceAccount's name.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = Error;

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>` exactly: no other path shape,
    /// no query, fragment, port or user info.
    fn from_str(uri: &str) -> Result<SpiffeId, Error> {
        let invalid = |reason: &str| Error::InvalidName {
            name: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| invalid("a SPIFFE ID starts with spiffe://"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("expected spiffe://<trust-domain>/ns/<ns>/sa/<sa>"))?;
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", namespace, "sa", service_account] => {
                SpiffeId::new(trust_domain, namespace, service_account)
            }
            _ => Err(invalid("expected spiffe://<trust-domain>/ns/<ns>/sa/<sa>")),
        }
    }
}

/// A SPIFFE trust domain: lowercase letters, digits, `.`, `-`, `_`.
pub(crate) fn check_trust_domain(s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= MAX_TRUST_DOMAIN_LEN
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: s.to_owned(),
            reason: "a trust domain is lowercase letters, digits, '.', '-' and '_', such as cluster.local"
                .to_owned(),
        })
    }
}

/// A Kubernetes object name: a DNS label, or with `dots` a DNS subdomain.
fn check_name(s: &str, max: usize, dots: bool, what: &str) -> Result<(), Error> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let ok = s.len() <= max
        && if dots {
            s.split('.').all(label_ok)
        } else {
            label_ok(s)
        };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: s.to_owned(),
            reason: format!("not a valid name for {what}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_same_uri() -> Result<(), Error> {
        let id = SpiffeId::new("cluster.local", "shop", "web")?;
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(id.to_string().parse::<SpiffeId>()?, id);
        let dotted: SpiffeId = "spiffe://td/ns/a/sa/b.c-d".parse()?;
        assert_eq!(dotted.service_account(), "b.c-d");
        Ok(())
    }

    #[test]
    fn refuses_what_kubernetes_or_spiffe_would_not_name() {
        for (td, ns, sa) in [
            ("", "a", "b"),
            ("Cluster.local", "a", "b"),
            ("td", "", "b"),
            ("td", "A", "b"),
            ("td", "a.b", "c"),
            ("td", "a", ""),
            ("td", "a", "b/c"),
            ("td", "a", "-b"),
            ("td", "a", "b..c"),
            ("td", &"n".repeat(64), "b"),
        ] {
            assert!(SpiffeId::new(td, ns, sa).is_err(), "{td} {ns} {sa}");
        }
    }

    #[test]
    fn parses_only_the_mesh_shape() {
        for bad in [
            "spiffe://td/ns/a/sa/b/extra",
            "spiffe://td/ns/a",
            "spiffe://td",
            "https://td/ns/a/sa/b",
            "spiffe://td:443/ns/a/sa/b",
            "spiffe://user@td/ns/a/sa/b",
            "spiffe://td/ns/a/sa/b?x",
            "spiffe://td/sa/a/ns/b",
            "spiffe://td//ns/a/sa/b",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }
}
