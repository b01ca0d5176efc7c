//! Whether a pod is injected, and why: the rules that come before any
//! override is read (never-injected pods, the `weft.dev/inject` opt-in, names
//! and ports that would clash with weft's own), and the words that explain
//! each outcome to an operator.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;

use crate::config::{
    IDENTITY_VOLUME_NAME, INIT_CONTAINER_NAME, InjectorConfig, PROXY_CONTAINER_NAME, PROXY_PORTS,
};

/// The opt-in annotation, on a pod or its namespace.
pub const INJECT_ANNOTATION: &str = "weft.dev/inject";

/// Values longer than this are shortened when quoted back to the user.
const MAX_VALUE_SHOWN: usize = 64;

/// The outcome of the injection policy for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The pod is injected; the strings say why (which annotation enabled it, which overrides apply).
    Inject {
        /// Human-readable reasons, the opt-in first.
        reasons: Vec<String>,
    },
    /// The pod is left as it is.
    Skip(SkipReason),
}

impl Decision {
    /// True when the pod is injected.
    pub fn is_inject(&self) -> bool {
        matches!(self, Decision::Inject { .. })
    }

    /// The skip reason, when the pod is skipped.
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        match self {
            Decision::Skip(reason) => Some(reason),
            Decision::Inject { .. } => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Inject { reasons } => write!(f, "inject: {}", reasons.join("; ")),
            Decision::Skip(reason) => write!(f, "skip: {reason}"),
        }
    }
}

/// The object an annotation was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// The pod itself.
    Pod,
    /// The pod's namespace (its name).
    Namespace(String),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Pod => f.write_str("the pod"),
            Object::Namespace(name) => write!(f, "namespace {name:?}"),
        }
    }
}

/// Why a pod is not injected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The pod already has a `weft-proxy` container or init container.
    AlreadyInjected,
    /// `spec.hostNetwork: true`.
    HostNetwork,
    /// The pod is in `kube-system`.
    KubeSystem,
    /// The pod is in weft's own namespace.
    ControlPlaneNamespace {
        /// The control-plane namespace.
        namespace: String,
    },
    /// Neither the pod nor its namespace says `weft.dev/inject: enabled`.
    NotEnabled,
    /// The pod says `weft.dev/inject: disabled`.
    DisabledByPod,
    /// The namespace says `disabled` and the pod says nothing.
    DisabledByNamespace {
        /// The namespace.
        namespace: String,
    },
    /// `weft.dev/inject` holds something other than `enabled` or `disabled`.
    InvalidInjectValue {
        /// Where the value was read.
        object: Object,
        /// The value as written.
        value: String,
    },
    /// A `config.weft.dev/` override the planner cannot honour.
    MalformedOverride {
        /// The full annotation key.
        annotation: String,
        /// The value as written.
        value: String,
        /// Where the value was read.
        object: Object,
        /// What is wrong with it.
        problem: String,
        /// What the annotation accepts.
        expected: String,
    },
    /// The pod already uses a name weft would add, without being injected.
    NameConflict {
        /// `container`, `init container` or `volume`.
        kind: &'static str,
        /// The clashing name.
        name: String,
    },
    /// An application container declares a port the proxy listens on.
    PortConflict {
        /// The container declaring it.
        container: String,
        /// The port.
        port: u16,
    },
}

impl SkipReason {
    /// A short stable code for metrics labels and audit annotations.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::AlreadyInjected => "already-injected",
            SkipReason::HostNetwork => "host-network",
            SkipReason::KubeSystem => "kube-system",
            SkipReason::ControlPlaneNamespace { .. } => "control-plane-namespace",
            SkipReason::NotEnabled => "not-enabled",
            SkipReason::DisabledByPod => "disabled-by-pod",
            SkipReason::DisabledByNamespace { .. } => "disabled-by-namespace",
            SkipReason::InvalidInjectValue { .. } => "invalid-inject-value",
            SkipReason::MalformedOverride { .. } => "malformed-override",
            SkipReason::NameConflict { .. } => "name-conflict",
            SkipReason::PortConflict { .. } => "port-conflict",
        }
    }

    /// True when the user asked for something weft cannot do, so `kubectl`
    /// should show a warning; the other skips are the policy working as meant.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            SkipReason::InvalidInjectValue { .. }
                | SkipReason::MalformedOverride { .. }
                | SkipReason::NameConflict { .. }
                | SkipReason::PortConflict { .. }
        )
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::AlreadyInjected => write!(
                f,
                "the pod already has a {PROXY_CONTAINER_NAME} container (it was injected before)"
            ),
            SkipReason::HostNetwork => f.write_str(
                "the pod uses the node's network (spec.hostNetwork: true); redirecting its traffic would redirect the node's",
            ),
            SkipReason::KubeSystem => f.write_str("pods in kube-system are never injected"),
            SkipReason::ControlPlaneNamespace { namespace } => write!(
                f,
                "pods in weft's control-plane namespace {namespace:?} are never injected"
            ),
            SkipReason::NotEnabled => write!(
                f,
                "{INJECT_ANNOTATION} is not set to enabled on the pod or its namespace"
            ),
            SkipReason::DisabledByPod => {
                write!(f, "the pod is annotated {INJECT_ANNOTATION}=disabled")
            }
            SkipReason::DisabledByNamespace { namespace } => write!(
                f,
                "namespace {namespace:?} is annotated {INJECT_ANNOTATION}=disabled and the pod does not say enabled"
            ),
            SkipReason::InvalidInjectValue { object, value } => write!(
                f,
                "annotation {INJECT_ANNOTATION} on {object} is {}; expected enabled or disabled",
                quote(value)
            ),
            SkipReason::MalformedOverride {
                annotation,
                value,
                object,
                problem,
                expected,
            } => write!(
                f,
                "annotation {annotation} on {object} is {}: {problem}; expected {expected}",
                quote(value)
            ),
            SkipReason::NameConflict { kind, name } => write!(
                f,
                "the pod already has a {kind} named {name} but no {PROXY_CONTAINER_NAME}; \
                 weft does not add a second one"
            ),
            SkipReason::PortConflict { container, port } => write!(
                f,
                "container {container:?} declares port {port}, which the weft proxy listens on \
                 (reserved: {})",
                reserved_ports()
            ),
        }
    }
}

fn reserved_ports() -> String {
    let mut ports = PROXY_PORTS;
    ports.sort_unstable();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    ports.join(", ")
}

/// Quotes a user's value, escaped and shortened, for messages.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_SHOWN) {
        Some((cut, _)) => format!("{:?}...", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Applies the rules that do not depend on overrides. `Ok` names the object
/// whose `weft.dev/inject: enabled` opted the pod in.
pub fn admit(
    spec: &PodSpec,
    pod_annotations: &BTreeMap<String, String>,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
    config: &InjectorConfig,
) -> Result<Object, SkipReason> {
    let init_containers = spec.init_containers.iter().flatten();
    let all_containers = || spec.containers.iter().chain(init_containers.clone());
    // First, so a re-submitted injected pod says so whatever else holds.
    if all_containers().any(|c| c.name == PROXY_CONTAINER_NAME) {
        return Err(SkipReason::AlreadyInjected);
    }
    if spec.host_network == Some(true) {
        return Err(SkipReason::HostNetwork);
    }
    if namespace == "kube-system" {
        return Err(SkipReason::KubeSystem);
    }
    if namespace == config.control_plane_namespace {
        return Err(SkipReason::ControlPlaneNamespace {
            namespace: namespace.to_string(),
        });
    }

    let enabled_by = opt_in(pod_annotations, namespace, namespace_annotations)?;

    // A duplicate name makes the API server reject the whole pod, which is
    // worse than not injecting it.
    let kind = if spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == INIT_CONTAINER_NAME)
    {
        Some("init container")
    } else if spec
        .containers
        .iter()
        .any(|c| c.name == INIT_CONTAINER_NAME)
    {
        Some("container")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(SkipReason::NameConflict {
            kind,
            name: INIT_CONTAINER_NAME.to_string(),
        });
    }
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == IDENTITY_VOLUME_NAME)
    {
        return Err(SkipReason::NameConflict {
            kind: "volume",
            name: IDENTITY_VOLUME_NAME.to_string(),
        });
    }
    // The proxy could not bind, never become ready, and the app would never start.
    for container in all_containers() {
        for declared in container.ports.iter().flatten() {
            let port = u16::try_from(declared.container_port).ok();
            if let Some(port) = port.filter(|p| PROXY_PORTS.contains(p)) {
                return Err(SkipReason::PortConflict {
                    container: container.name.clone(),
                    port,
                });
            }
        }
    }
    Ok(enabled_by)
}

/// `weft.dev/inject`: the pod's value wins; the namespace's counts only when the pod has none.
fn opt_in(
    pod_annotations: &BTreeMap<String, String>,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
) -> Result<Object, SkipReason> {
    let (object, value) = match (
        pod_annotations.get(INJECT_ANNOTATION),
        namespace_annotations.get(INJECT_ANNOTATION),
    ) {
        (Some(value), _) => (Object::Pod, value),
        (None, Some(value)) => (Object::Namespace(namespace.to_string()), value),
        (None, None) => return Err(SkipReason::NotEnabled),
    };
    match (value.as_str(), &object) {
        ("enabled", _) => Ok(object),
        ("disabled", Object::Pod) => Err(SkipReason::DisabledByPod),
        ("disabled", Object::Namespace(_)) => Err(SkipReason::DisabledByNamespace {
            namespace: namespace.to_string(),
        }),
        _ => Err(SkipReason::InvalidInjectValue {
            object,
            value: value.clone(),
        }),
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
