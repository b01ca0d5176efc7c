//! What the injector writes into every pod that is not decided per pod:
//! images, control-plane addresses, trust anchors, defaults.
//!
//! `InjectorConfig` is plain data. The webhook fills it from its flags, `weft
//! inject` from its own; both start from `Default`, which carries the defaults
//! documented in `docs/architecture.md`. The whole value is hashed into the
//! `weft.dev/inject-digest` annotation, so it derives `Serialize`.

use serde::Serialize;

use crate::quantity::Quantity;

/// The proxy version this injector writes (`v` + the crate version).
pub const PROXY_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// UID the proxy runs as; `weft-init` never redirects its packets.
pub const PROXY_UID: u16 = 2102;
/// Where `weft-init` redirects inbound TCP; the proxy's inbound listener.
pub const INBOUND_PORT: u16 = 4143;
/// Where `weft-init` redirects outbound TCP; the proxy's outbound listener.
pub const OUTBOUND_PORT: u16 = 4140;
/// The proxy's admin port (`/metrics`, `/ready`, `/live`, `/shutdown`).
pub const ADMIN_PORT: u16 = 4191;
/// The proxy's tap port (mTLS only).
pub const TAP_PORT: u16 = 4190;
/// Every port the proxy binds; an application declaring one of them cannot be meshed.
pub const PROXY_PORTS: [u16; 4] = [INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT, TAP_PORT];

/// Name of the init step that installs the redirect.
pub const INIT_CONTAINER_NAME: &str = "weft-init";
/// Name of the proxy container.
pub const PROXY_CONTAINER_NAME: &str = "weft-proxy";
/// Name of the projected ServiceAccount token volume.
pub const IDENTITY_VOLUME_NAME: &str = "weft-identity-token";
/// Where the token volume is mounted in the proxy.
pub const IDENTITY_MOUNT_PATH: &str = "/var/run/secrets/weft.dev/identity";
/// Audience of the projected token; identity accepts only this one.
pub const IDENTITY_TOKEN_AUDIENCE: &str = "identity.weft.dev";

/// Settings of the injector that apply to every pod it injects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectorConfig {
    /// Default proxy image (`config.weft.dev/proxy-image` overrides it per pod).
    pub proxy_image: String,
    /// Version written to `weft.dev/proxy-version`.
    pub proxy_version: String,
    /// Written to `weft.dev/injected-by` (`weft-injector v0.1.0`, `weft-cli v0.1.0`).
    pub injected_by: String,
    /// The control-plane namespace, never injected (`weft`).
    pub control_plane_namespace: String,
    /// SPIFFE trust domain (`WEFT_PROXY_IDENTITY_TRUST_DOMAIN`).
    pub trust_domain: String,
    /// Identity service address (`WEFT_PROXY_IDENTITY_ADDR`).
    pub identity_addr: String,
    /// Destination service address (`WEFT_PROXY_DESTINATION_ADDR`).
    pub destination_addr: String,
    /// The only identity the proxy's tap port accepts (`WEFT_PROXY_TAP_CLIENT_ID`).
    pub tap_client_id: String,
    /// PEM roots for mesh TLS (`WEFT_PROXY_TRUST_ANCHORS`), written only when set.
    pub trust_anchors_pem: Option<String>,
    /// Default sidecar mode: native (an init container with `restartPolicy: Always`).
    pub native_sidecar: bool,
    /// Default proxy log filter (`WEFT_PROXY_LOG`).
    pub proxy_log: String,
    /// Default proxy resources, each overridable per pod.
    pub proxy_resources: ProxyResources,
    /// Drain time after SIGTERM (`WEFT_PROXY_SHUTDOWN_GRACE_PERIOD`).
    pub shutdown_grace_period: String,
}

/// Default requests and limits of the `weft-proxy` container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyResources {
    /// `resources.requests.cpu` (`10m`).
    pub cpu_request: Option<Quantity>,
    /// `resources.limits.cpu` (none).
    pub cpu_limit: Option<Quantity>,
    /// `resources.requests.memory` (`20Mi`).
    pub memory_request: Option<Quantity>,
    /// `resources.limits.memory` (`250Mi`).
    pub memory_limit: Option<Quantity>,
}

impl Default for ProxyResources {
    fn default() -> Self {
        Self {
            cpu_request: Some(Quantity::millicores(10)),
            cpu_limit: None,
            memory_request: Some(Quantity::mebibytes(20)),
            memory_limit: Some(Quantity::mebibytes(250)),
        }
    }
}

impl Default for InjectorConfig {
    fn default() -> Self {
        Self::new("weft", "cluster.local")
    }
}

impl InjectorConfig {
    /// The webhook's defaults for a control plane in `control_plane_namespace`
    /// with SPIFFE trust domain `trust_domain`: service addresses and the tap
    /// identity are derived from both.
    pub fn new(control_plane_namespace: &str, trust_domain: &str) -> Self {
        Self {
            proxy_image: format!("ghcr.io/weft-dev/weft-proxy:{PROXY_VERSION}"),
            proxy_version: PROXY_VERSION.to_string(),
            injected_by: format!("weft-injector {PROXY_VERSION}"),
            control_plane_namespace: control_plane_namespace.to_string(),
            trust_domain: trust_domain.to_string(),
            identity_addr: identity_addr(control_plane_namespace),
            destination_addr: destination_addr(control_plane_namespace),
            tap_client_id: tap_client_id(trust_domain, control_plane_namespace),
            trust_anchors_pem: None,
            native_sidecar: true,
            proxy_log: "info".to_string(),
            proxy_resources: ProxyResources::default(),
            shutdown_grace_period: "30s".to_string(),
        }
    }

    /// The same defaults, marked as written by `weft inject` rather than the webhook.
    pub fn for_cli() -> Self {
        Self::default().with_injected_by(format!("weft-cli {PROXY_VERSION}"))
    }

    /// Replaces the `weft.dev/injected-by` value.
    pub fn with_injected_by(mut self, injected_by: impl Into<String>) -> Self {
        self.injected_by = injected_by.into();
        self
    }

    /// Replaces the default proxy image.
    pub fn with_proxy_image(mut self, image: impl Into<String>) -> Self {
        self.proxy_image = image.into();
        self
    }

    /// Sets the PEM bundle written to `WEFT_PROXY_TRUST_ANCHORS`.
    pub fn with_trust_anchors(mut self, pem: impl Into<String>) -> Self {
        self.trust_anchors_pem = Some(pem.into());
        self
    }

    /// Sets the default sidecar mode.
    pub fn with_native_sidecar(mut self, native: bool) -> Self {
        self.native_sidecar = native;
        self
    }
}

/// `weft-identity.<ns>.svc.cluster.local:8080`, the default identity address.
pub fn identity_addr(control_plane_namespace: &str) -> String {
    format!("weft-identity.{control_plane_namespace}.svc.cluster.local:8080")
}

/// `weft-destination.<ns>.svc.cluster.local:8086`, the default destination address.
pub fn destination_addr(control_plane_namespace: &str) -> String {
    format!("weft-destination.{control_plane_namespace}.svc.cluster.local:8086")
}

/// `spiffe://<trust-domain>/ns/<ns>/sa/weft-tap`, the tap API's identity.
pub fn tap_client_id(trust_domain: &str, control_plane_namespace: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{control_plane_namespace}/sa/weft-tap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_contract() {
        let config = InjectorConfig::default();
        assert_eq!(
            config.proxy_version,
            format!("v{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            config.proxy_image,
            format!("ghcr.io/weft-dev/weft-proxy:v{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(config.injected_by, format!("weft-injector {PROXY_VERSION}"));
        assert_eq!(config.control_plane_namespace, "weft");
        assert_eq!(config.trust_domain, "cluster.local");
        assert_eq!(
            config.identity_addr,
            "weft-identity.weft.svc.cluster.local:8080"
        );
        assert_eq!(
            config.destination_addr,
            "weft-destination.weft.svc.cluster.local:8086"
        );
        assert_eq!(
            config.tap_client_id,
            "spiffe://cluster.local/ns/weft/sa/weft-tap"
        );
        assert_eq!(config.trust_anchors_pem, None);
        assert!(config.native_sidecar);
        assert_eq!(config.proxy_log, "info");
        assert_eq!(config.shutdown_grace_period, "30s");
        let resources = &config.proxy_resources;
        assert_eq!(
            resources.cpu_request.as_ref().map(Quantity::as_str),
            Some("10m")
        );
        assert_eq!(resources.cpu_limit, None);
        assert_eq!(
            resources.memory_request.as_ref().map(Quantity::as_str),
            Some("20Mi")
        );
        assert_eq!(
            resources.memory_limit.as_ref().map(Quantity::as_str),
            Some("250Mi")
        );
    }

    #[test]
    fn addresses_follow_the_control_plane_namespace() {
        let config = InjectorConfig::new("mesh", "example.org");
        assert_eq!(
            config.identity_addr,
            "weft-identity.mesh.svc.cluster.local:8080"
        );
        assert_eq!(
            config.destination_addr,
            "weft-destination.mesh.svc.cluster.local:8086"
        );
        assert_eq!(
            config.tap_client_id,
            "spiffe://example.org/ns/mesh/sa/weft-tap"
        );
    }

    #[test]
    fn cli_config_says_who_injected() {
        assert_eq!(
            InjectorConfig::for_cli().injected_by,
            format!("weft-cli {PROXY_VERSION}")
        );
    }

    #[test]
    fn builders_set_their_field() {
        let config = InjectorConfig::default()
            .with_proxy_image("registry.local/proxy:dev")
            .with_trust_anchors("PEM")
            .with_native_sidecar(false);
        assert_eq!(config.proxy_image, "registry.local/proxy:dev");
        assert_eq!(config.trust_anchors_pem.as_deref(), Some("PEM"));
        assert!(!config.native_sidecar);
    }
}
