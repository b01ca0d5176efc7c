//! The proxy's environment: the `WEFT_PROXY_*` variables the injector
//! writes into the `weft-proxy` container and `weft-proxy run` reads back.
//! One list for both sides, so a name cannot drift between them; the few
//! the injector never writes (tests and benchmarks, `CORES`) are here too,
//! so the proxy reads every variable by the same names.

/// Tracing filter.
pub const LOG: &str = "WEFT_PROXY_LOG";
/// Inbound listener.
pub const INBOUND_LISTEN_ADDR: &str = "WEFT_PROXY_INBOUND_LISTEN_ADDR";
/// Outbound listener.
pub const OUTBOUND_LISTEN_ADDR: &str = "WEFT_PROXY_OUTBOUND_LISTEN_ADDR";
/// Admin listener.
pub const ADMIN_LISTEN_ADDR: &str = "WEFT_PROXY_ADMIN_LISTEN_ADDR";
/// Tap listener.
pub const TAP_LISTEN_ADDR: &str = "WEFT_PROXY_TAP_LISTEN_ADDR";
/// Ports that skip protocol detection.
pub const OPAQUE_PORTS: &str = "WEFT_PROXY_OPAQUE_PORTS";
/// Drain time after SIGTERM.
pub const SHUTDOWN_GRACE_PERIOD: &str = "WEFT_PROXY_SHUTDOWN_GRACE_PERIOD";
/// Downward API: pod name.
pub const POD_NAME: &str = "WEFT_PROXY_POD_NAME";
/// Downward API: pod namespace.
pub const POD_NAMESPACE: &str = "WEFT_PROXY_POD_NAMESPACE";
/// Downward API: pod IP.
pub const POD_IP: &str = "WEFT_PROXY_POD_IP";
/// Downward API: service account.
pub const SERVICE_ACCOUNT: &str = "WEFT_PROXY_SERVICE_ACCOUNT";
/// Downward API: node name.
pub const NODE_NAME: &str = "WEFT_PROXY_NODE_NAME";
/// SPIFFE trust domain.
pub const IDENTITY_TRUST_DOMAIN: &str = "WEFT_PROXY_IDENTITY_TRUST_DOMAIN";
/// Projected service-account token.
pub const IDENTITY_TOKEN_FILE: &str = "WEFT_PROXY_IDENTITY_TOKEN_FILE";
/// Identity service address.
pub const IDENTITY_ADDR: &str = "WEFT_PROXY_IDENTITY_ADDR";
/// Destination service address.
pub const DESTINATION_ADDR: &str = "WEFT_PROXY_DESTINATION_ADDR";
/// The identity tap accepts.
pub const TAP_CLIENT_ID: &str = "WEFT_PROXY_TAP_CLIENT_ID";
/// Mesh trust anchors (PEM).
pub const TRUST_ANCHORS: &str = "WEFT_PROXY_TRUST_ANCHORS";
/// Refuse inbound connections that are not mesh TLS (`true`/`false`).
pub const INBOUND_REQUIRE_IDENTITY: &str = "WEFT_PROXY_INBOUND_REQUIRE_IDENTITY";
/// Threads that serve connections (default 1: one single-threaded runtime).
pub const CORES: &str = "WEFT_PROXY_CORES";
/// Tests and benchmarks only: inbound target instead of `SO_ORIGINAL_DST`.
pub const INBOUND_FIXED_TARGET: &str = "WEFT_PROXY_INBOUND_FIXED_TARGET";
/// Tests and benchmarks only: outbound target instead of `SO_ORIGINAL_DST`.
pub const OUTBOUND_FIXED_TARGET: &str = "WEFT_PROXY_OUTBOUND_FIXED_TARGET";
