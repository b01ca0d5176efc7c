//! What the injector writes into every pod that is not decided per pod:
//! images, control-plane addresses, trust anchors, defaults.
//! Planner helper: flesh out (see docs/architecture.md for the contract).

/// Settings of the injector that apply to every pod it injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectorConfig {
    /// Default proxy image (`config.weft.dev/proxy-image` overrides it per pod).
    pub proxy_image: String,
    /// Version written to `weft.dev/proxy-version`.
    pub proxy_version: String,
    /// Written to `weft.dev/injected-by` (`weft-injector v0.1.0`, `weft-cli v0.1.0`).
    pub injected_by: String,
    /// The control-plane namespace, never injected (`weft`).
    pub control_plane_namespace: String,
}
