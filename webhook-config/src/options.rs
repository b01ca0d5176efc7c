//! What a render can change, its defaults, and the validation of every value
//! before it reaches a manifest.

use std::fmt;
use std::str::FromStr;

use crate::Error;
use crate::validate::{
    dns_label, image_reference, invalid, log_level, pem_block, trust_domain, webhook_url,
};

/// weft's version, written into labels and the default image tags.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The default control-plane namespace.
pub const DEFAULT_NAMESPACE: &str = "weft";
/// Injector replicas by default: two, so one can restart while the other serves.
pub const DEFAULT_REPLICAS: u32 = 2;
/// Injector replicas with `--ha`: three, one per node (required anti-affinity).
pub const HA_REPLICAS: u32 = 3;
/// The webhook's default `timeoutSeconds`: small, so a slow injector delays
/// pod creation by seconds, not by the API server's 10 s default.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 5;
/// The default SPIFFE trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The injector's default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Where weft's images are published.
pub const IMAGE_REGISTRY: &str = "ghcr.io/weft-dev";
/// The injector's Service, Deployment and webhook configuration name.
pub const INJECTOR_NAME: &str = "weft-injector";
/// The name of the webhook inside the configuration.
pub const WEBHOOK_NAME: &str = "inject.weft.dev";
/// The Secret holding the serving certificate.
pub const TLS_SECRET_NAME: &str = "weft-injector-tls";
/// The control plane's (identity and destination) Deployment and
/// ServiceAccount name.
pub const CONTROL_NAME: &str = "weft-control";
/// The Secret holding the mesh issuer (`tls.crt`, `tls.key`).
pub const ISSUER_SECRET_NAME: &str = "weft-identity-issuer";
/// The ConfigMap holding the mesh trust anchors (`ca-bundle.crt`).
pub const TRUST_ANCHORS_CONFIGMAP_NAME: &str = "weft-trust-anchors";
/// Where the trust anchors are mounted in the injector and weft-control.
pub const TRUST_ANCHORS_PATH: &str = "/var/run/weft/identity/trust-anchors/ca-bundle.crt";

/// `<registry>/<name>:<tag>` for one of weft's images.
pub fn image(name: &str, tag: &str) -> String {
    format!("{IMAGE_REGISTRY}/{name}:{tag}")
}

/// The injector image of this version.
pub fn default_injector_image() -> String {
    image("weft-injector", &format!("v{VERSION}"))
}

/// The proxy image of this version.
pub fn default_proxy_image() -> String {
    image("weft-proxy", &format!("v{VERSION}"))
}

/// The control-plane (identity and destination) image of this version.
pub fn default_control_image() -> String {
    image("weft-control", &format!("v{VERSION}"))
}

/// The mesh's identity material: the trust anchors every proxy trusts and
/// the issuer identity signs with. The anchors' keys are never here.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityCerts {
    /// The trust bundle (PEM certificates): the ConfigMap's `ca-bundle.crt`.
    pub trust_anchors_pem: String,
    /// The issuer certificate (PEM): the Secret's `tls.crt`.
    pub issuer_cert_pem: String,
    /// The issuer key (PKCS#8 PEM): the Secret's `tls.key`.
    pub issuer_key_pem: String,
}

impl fmt::Debug for IdentityCerts {
    // The issuer key must not reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCerts")
            .field("trust_anchors_pem", &self.trust_anchors_pem)
            .field("issuer_cert_pem", &self.issuer_cert_pem)
            .field("issuer_key_pem", &"[elided]")
            .finish()
    }
}

/// What the API server does when the injector cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Create the pod uninjected: the cluster keeps working without weft.
    #[default]
    Ignore,
    /// Refuse the pod: no pod ever runs outside the mesh by accident.
    Fail,
}

impl FailurePolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Ignore => "Ignore",
            FailurePolicy::Fail => "Fail",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailurePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "ignore" => Ok(FailurePolicy::Ignore),
            "fail" => Ok(FailurePolicy::Fail),
            _ => Err(invalid("failure policy", s, "expected Ignore or Fail")),
        }
    }
}

/// How the API server reaches the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WebhookTarget {
    /// The `weft-injector` Service in the control-plane namespace (what
    /// `weft install` ships).
    #[default]
    Service,
    /// A URL, e.g. `https://127.0.0.1:8443/mutate`: the e2e harness runs the
    /// injector as a local process next to the API server.
    Url(String),
}

/// Where the serving certificate comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Tls {
    /// Certificates made by `weft install`: a Secret with the serving
    /// certificate and key, and the CA in the webhook's `caBundle`.
    Bundled {
        /// The CA certificate (PEM) that signed `cert_pem`.
        ca_cert_pem: String,
        /// The serving certificate (PEM).
        cert_pem: String,
        /// The serving key (PKCS#8 PEM).
        key_pem: String,
    },
    /// cert-manager makes and renews them (Issuers and Certificates), and its
    /// cainjector fills in the `caBundle`.
    CertManager,
}

impl fmt::Debug for Tls {
    // The key must not reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tls::Bundled {
                ca_cert_pem,
                cert_pem,
                ..
            } => f
                .debug_struct("Bundled")
                .field("ca_cert_pem", ca_cert_pem)
                .field("cert_pem", cert_pem)
                .field("key_pem", &"[elided]")
                .finish(),
            Tls::CertManager => f.write_str("CertManager"),
        }
    }
}

/// Everything `render` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The control-plane namespace (a DNS label).
    pub namespace: String,
    /// The injector's image.
    pub injector_image: String,
    /// The proxy image the injector writes into pods.
    pub proxy_image: String,
    /// Injector replicas.
    pub replicas: u32,
    /// High availability: injectors on distinct nodes (required anti-affinity).
    pub ha: bool,
    /// The webhook's `failurePolicy`.
    pub failure_policy: FailurePolicy,
    /// The webhook's `timeoutSeconds` (1 to 30, as Kubernetes allows).
    pub webhook_timeout_seconds: u32,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// The injector's log filter (`info`, or `target=level` directives).
    pub log_level: String,
    /// How the API server reaches the webhook.
    pub webhook_target: WebhookTarget,
    /// Where the serving certificate comes from.
    pub tls: Tls,
    /// The weft-control image (identity and destination).
    pub control_image: String,
    /// The mesh's trust anchors and issuer. With them, the render adds
    /// weft-control (identity and destination) and gives the injector the
    /// anchors; without them it is the injector alone (what the e2e webhook
    /// suite runs).
    pub identity: Option<IdentityCerts>,
}

impl RenderOptions {
    /// The defaults, with the given certificates.
    pub fn new(tls: Tls) -> Self {
        RenderOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            injector_image: default_injector_image(),
            proxy_image: default_proxy_image(),
            replicas: DEFAULT_REPLICAS,
            ha: false,
            failure_policy: FailurePolicy::default(),
            webhook_timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            webhook_target: WebhookTarget::default(),
            tls,
            control_image: default_control_image(),
            identity: None,
        }
    }

    /// Check every value that goes into a manifest.
    pub fn validate(&self) -> Result<(), Error> {
        dns_label("namespace", &self.namespace)?;
        image_reference("injector image", &self.injector_image)?;
        image_reference("proxy image", &self.proxy_image)?;
        if self.replicas == 0 {
            return Err(invalid("replicas", "0", "at least one injector must run"));
        }
        if !(1..=30).contains(&self.webhook_timeout_seconds) {
            return Err(invalid(
                "webhook timeout",
                &self.webhook_timeout_seconds.to_string(),
                "Kubernetes accepts 1 to 30 seconds",
            ));
        }
        trust_domain(&self.trust_domain)?;
        log_level(&self.log_level)?;
        if let WebhookTarget::Url(url) = &self.webhook_target {
            webhook_url(url)?;
        }
        if let Tls::Bundled {
            ca_cert_pem,
            cert_pem,
            key_pem,
        } = &self.tls
        {
            pem_block("CA certificate", ca_cert_pem, "CERTIFICATE")?;
            pem_block("serving certificate", cert_pem, "CERTIFICATE")?;
            pem_block("serving key", key_pem, "PRIVATE KEY")?;
        }
        if let Some(identity) = &self.identity {
            image_reference("control image", &self.control_image)?;
            pem_block("trust anchors", &identity.trust_anchors_pem, "CERTIFICATE")?;
            pem_block(
                "issuer certificate",
                &identity.issuer_cert_pem,
                "CERTIFICATE",
            )?;
            pem_block("issuer key", &identity.issuer_key_pem, "PRIVATE KEY")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Tls {
        Tls::CertManager
    }

    #[test]
    fn defaults_are_valid() -> Result<(), Error> {
        RenderOptions::new(tls()).validate()
    }

    #[test]
    fn failure_policy_parses_either_case() -> Result<(), Error> {
        assert_eq!("Fail".parse::<FailurePolicy>()?, FailurePolicy::Fail);
        assert_eq!("ignore".parse::<FailurePolicy>()?, FailurePolicy::Ignore);
        assert!("Maybe".parse::<FailurePolicy>().is_err());
        Ok(())
    }

    #[test]
    fn bundled_tls_must_hold_pem_of_the_right_kind() {
        let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_owned();
        let key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n".to_owned();
        let mut options = RenderOptions::new(Tls::Bundled {
            ca_cert_pem: cert.clone(),
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        });
        assert!(options.validate().is_ok());
        options.tls = Tls::Bundled {
            ca_cert_pem: cert.clone(),
            cert_pem: key,
            key_pem: cert,
        };
        assert!(options.validate().is_err());
    }

    #[test]
    fn identity_certs_must_hold_pem_of_the_right_kind() {
        let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_owned();
        let key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n".to_owned();
        let mut options = RenderOptions::new(tls());
        options.identity = Some(IdentityCerts {
            trust_anchors_pem: cert.clone(),
            issuer_cert_pem: cert.clone(),
            issuer_key_pem: key.clone(),
        });
        assert!(options.validate().is_ok());
        options.identity = Some(IdentityCerts {
            trust_anchors_pem: cert.clone(),
            issuer_cert_pem: key.clone(),
            issuer_key_pem: key,
        });
        assert!(options.validate().is_err());
        assert!(
            !format!("{:?}", options.identity).contains("PRIVATE KEY-----\nAA"),
            "the issuer key is elided"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let tls = Tls::Bundled {
            ca_cert_pem: String::new(),
            cert_pem: String::new(),
            key_pem: "SECRET".to_owned(),
        };
        assert!(!format!("{tls:?}").contains("SECRET"));
    }
}
