//! Whether a pod is injected, and why. Planner helper owns this file.

/// The outcome of the injection policy for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The pod is injected; the strings say why (which annotation enabled it).
    Inject { reasons: Vec<String> },
    /// The pod is left as it is.
    Skip(SkipReason),
}

/// Why a pod is not injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    NotEnabled,
}
