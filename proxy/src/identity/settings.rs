//! The mesh settings of one proxy, read from the validated [`Config`].
//!
//! Mesh TLS is on when `WEFT_PROXY_TRUST_ANCHORS` is set (the injector
//! writes it when the control plane has anchors); then every variable that
//! identity needs must be set too, and a missing one stops the proxy with
//! an error naming it. Without anchors the proxy runs in plaintext, as
//! before mTLS existed, and requiring identity is an error.

use std::path::PathBuf;

use weft_certs::SpiffeId;

use crate::run::config::{Config, ConfigError, vars};
use crate::tls::TrustAnchors;

const BECAUSE_ANCHORS: &str = "WEFT_PROXY_TRUST_ANCHORS is set (mesh TLS is on)";

/// What the proxy needs for identity and mesh TLS.
#[derive(Clone, Debug)]
pub struct MeshSettings {
    /// The proxy's own SPIFFE identity.
    pub identity: SpiffeId,
    /// The roots of every mesh and control-plane certificate.
    pub anchors: TrustAnchors,
    /// The projected ServiceAccount token, re-read at each certification.
    pub token_file: PathBuf,
    /// `host:port` of identity.
    pub identity_addr: String,
    /// `host:port` of destination.
    pub destination_addr: String,
    /// Whether inbound connections must be mesh TLS.
    pub require_identity: bool,
}

impl MeshSettings {
    /// The mesh settings, or `None` when mesh TLS is off.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let id = &config.identity;
        let Some(anchors_pem) = &id.trust_anchors else {
            if id.inbound_require_identity {
                return Err(ConfigError::Missing {
                    name: vars::TRUST_ANCHORS,
                    because: "WEFT_PROXY_INBOUND_REQUIRE_IDENTITY is true",
                });
            }
            return Ok(None);
        };
        let required = |value: &Option<String>, name: &'static str| {
            value.clone().ok_or(ConfigError::Missing {
                name,
                because: BECAUSE_ANCHORS,
            })
        };
        let anchors = TrustAnchors::from_pem(anchors_pem).map_err(|e| ConfigError::Invalid {
            name: vars::TRUST_ANCHORS,
            value: shorten(anchors_pem),
            reason: e.to_string(),
        })?;
        let trust_domain = required(&id.trust_domain, vars::IDENTITY_TRUST_DOMAIN)?;
        let namespace = required(&config.pod.namespace, vars::POD_NAMESPACE)?;
        let service_account = required(&config.pod.service_account, vars::SERVICE_ACCOUNT)?;
        let identity = SpiffeId::new(&trust_domain, &namespace, &service_account).map_err(|e| {
            ConfigError::Invalid {
                name: vars::SERVICE_ACCOUNT,
                value: service_account.clone(),
                reason: format!("no SPIFFE identity from it in namespace {namespace:?}: {e}"),
            }
        })?;
        Ok(Some(Self {
            identity,
            anchors,
            token_file: required(&id.token_file, vars::IDENTITY_TOKEN_FILE)?.into(),
            identity_addr: required(&id.identity_addr, vars::IDENTITY_ADDR)?,
            destination_addr: required(&id.destination_addr, vars::DESTINATION_ADDR)?,
            require_identity: id.inbound_require_identity,
        }))
    }
}

// A bundle is long; an error shows its start only.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn env(anchor_pem: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            (vars::TRUST_ANCHORS, anchor_pem),
            (vars::IDENTITY_TRUST_DOMAIN, "cluster.local"),
            (vars::POD_NAMESPACE, "shop"),
            (vars::SERVICE_ACCOUNT, "web"),
            (
                vars::IDENTITY_TOKEN_FILE,
                "/var/run/secrets/weft.dev/identity/token",
            ),
            (
                vars::IDENTITY_ADDR,
                "weft-identity.weft.svc.cluster.local:8080",
            ),
            (
                vars::DESTINATION_ADDR,
                "weft-destination.weft.svc.cluster.local:8086",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env
    }

    fn anchor_pem() -> Result<String, weft_certs::Error> {
        let anchor =
            weft_certs::TrustAnchor::generate("test", std::time::Duration::from_secs(3600))?;
        Ok(anchor.cert_pem().to_owned())
    }

    #[test]
    fn anchors_turn_the_mesh_on() -> TestResult {
        let config = Config::from_env(&env(&anchor_pem()?, &[]))?;
        let settings = MeshSettings::from_config(&config)?.ok_or("mesh should be on")?;
        assert_eq!(
            settings.identity.to_string(),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        assert!(!settings.require_identity);
        Ok(())
    }

    #[test]
    fn no_anchors_is_plaintext_unless_identity_is_required() -> TestResult {
        let config = Config::from_env(&HashMap::<String, String>::new())?;
        assert!(MeshSettings::from_config(&config)?.is_none());
        let mut required = HashMap::new();
        required.insert(vars::INBOUND_REQUIRE_IDENTITY.to_owned(), "true".to_owned());
        let config = Config::from_env(&required)?;
        let error = MeshSettings::from_config(&config)
            .err()
            .ok_or("required identity without anchors must fail")?;
        assert!(error.to_string().starts_with(vars::TRUST_ANCHORS));
        Ok(())
    }

    #[test]
    fn each_missing_variable_is_named() -> TestResult {
        let pem = anchor_pem()?;
        for name in [
            vars::IDENTITY_TRUST_DOMAIN,
            vars::POD_NAMESPACE,
            vars::SERVICE_ACCOUNT,
            vars::IDENTITY_TOKEN_FILE,
            vars::IDENTITY_ADDR,
            vars::DESTINATION_ADDR,
        ] {
            let mut env = env(&pem, &[]);
            env.remove(name);
            let config = Config::from_env(&env)?;
            let error = MeshSettings::from_config(&config)
                .err()
                .ok_or(format!("{name} missing must fail"))?;
            assert!(error.to_string().starts_with(name), "{error}");
        }
        let config = Config::from_env(&env(&pem, &[(vars::SERVICE_ACCOUNT, "Not_Valid")]))?;
        assert!(MeshSettings::from_config(&config).is_err());
        Ok(())
    }
}
