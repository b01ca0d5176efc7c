//! The `config.weft.dev/` overrides: read from the pod, else from its
//! namespace (per key), validated, and merged with the injector's defaults
//! into the `Settings` that decide one pod's patch.
//!
//! A malformed value skips the pod (weft never injects a pod differently from
//! what its annotations ask); an unknown key is only a warning.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::InjectorConfig;
use crate::decision::{Object, SkipReason, quote};
use crate::ports::{NamedPorts, PortList};
use crate::quantity::Quantity;
use crate::values;

/// Prefix of every override annotation.
pub const CONFIG_PREFIX: &str = "config.weft.dev/";

/// Where an effective setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The injector's configuration.
    Default,
    /// An annotation on the pod.
    Pod,
    /// An annotation on the pod's namespace.
    Namespace,
    /// Moved to fit the other end of a request/limit pair.
    Adjusted,
}

/// A setting and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    /// The effective value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// A request or limit, if any, and where it came from.
pub type SourcedQuantity = Sourced<Option<Quantity>>;

/// Everything per pod that decides its patch, after overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Inbound ports that bypass the proxy (`--skip-inbound-ports`).
    pub skip_inbound_ports: Sourced<PortList>,
    /// Outbound ports that bypass the proxy (`--skip-outbound-ports`).
    pub skip_outbound_ports: Sourced<PortList>,
    /// Ports that skip protocol detection (`WEFT_PROXY_OPAQUE_PORTS`).
    pub opaque_ports: Sourced<PortList>,
    /// Proxy `resources.requests.cpu`.
    pub proxy_cpu_request: SourcedQuantity,
    /// Proxy `resources.limits.cpu`.
    pub proxy_cpu_limit: SourcedQuantity,
    /// Proxy `resources.requests.memory`.
    pub proxy_memory_request: SourcedQuantity,
    /// Proxy `resources.limits.memory`.
    pub proxy_memory_limit: SourcedQuantity,
    /// `WEFT_PROXY_LOG`.
    pub proxy_log: Sourced<String>,
    /// Image of both weft containers.
    pub proxy_image: Sourced<String>,
    /// Native sidecar (init container) or classic (first app container).
    pub native_sidecar: Sourced<bool>,
    /// Refuse inbound connections that are not mesh TLS
    /// (`WEFT_PROXY_INBOUND_REQUIRE_IDENTITY`). Left out of the digest input
    /// while unset, so pods injected before the setting existed keep their
    /// digest.
    #[serde(skip_serializing_if = "unset_flag")]
    pub require_identity: Sourced<bool>,
}

/// A boolean setting nobody set (false, from the defaults).
fn unset_flag(flag: &Sourced<bool>) -> bool {
    !flag.value && flag.source == Source::Default
}

/// The settings for one pod, with what to tell the user about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The effective settings.
    pub settings: Settings,
    /// One line per setting that is not the default, for the plan's reasons.
    pub notes: Vec<String>,
    /// Unknown keys under `config.weft.dev/`.
    pub warnings: Vec<String>,
}

/// The override keys (after `config.weft.dev/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    SkipInboundPorts,
    SkipOutboundPorts,
    OpaquePorts,
    CpuRequest,
    CpuLimit,
    MemoryRequest,
    MemoryLimit,
    LogLevel,
    Image,
    NativeSidecar,
    RequireIdentity,
}

const KEYS: [Key; 11] = [
    Key::SkipInboundPorts,
    Key::SkipOutboundPorts,
    Key::OpaquePorts,
    Key::CpuRequest,
    Key::CpuLimit,
    Key::MemoryRequest,
    Key::MemoryLimit,
    Key::LogLevel,
    Key::Image,
    Key::NativeSidecar,
    Key::RequireIdentity,
];

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::SkipInboundPorts => "skip-inbound-ports",
            Key::SkipOutboundPorts => "skip-outbound-ports",
            Key::OpaquePorts => "opaque-ports",
            Key::CpuRequest => "proxy-cpu-request",
            Key::CpuLimit => "proxy-cpu-limit",
            Key::MemoryRequest => "proxy-memory-request",
            Key::MemoryLimit => "proxy-memory-limit",
            Key::LogLevel => "proxy-log-level",
            Key::Image => "proxy-image",
            Key::NativeSidecar => "native-sidecar",
            Key::RequireIdentity => "require-identity",
        }
    }

    fn annotation(self) -> String {
        format!("{CONFIG_PREFIX}{}", self.name())
    }

    fn expected(self) -> String {
        match self {
            Key::SkipInboundPorts | Key::OpaquePorts => {
                "a comma list of ports (1-65535), ranges like 8000-8100, or names of the pod's container ports"
                    .to_string()
            }
            Key::SkipOutboundPorts => "a comma list of ports (1-65535) and ranges like 8000-8100".to_string(),
            Key::CpuRequest | Key::CpuLimit => {
                "a Kubernetes quantity such as 100m or 0.5, a request no larger than its limit".to_string()
            }
            Key::MemoryRequest | Key::MemoryLimit => {
                "a Kubernetes quantity such as 64Mi or 1Gi, a request no larger than its limit".to_string()
            }
            Key::LogLevel => format!(
                "one of {} or target=level directives joined by commas",
                values::LOG_LEVELS.join(", ")
            ),
            Key::Image => format!(
                "an image reference without whitespace, at most {} characters",
                values::MAX_IMAGE_LEN
            ),
            Key::NativeSidecar => "true or false".to_string(),
            Key::RequireIdentity => {
                "true or false; true needs mesh identity (the injector's --trust-anchors-file)"
                    .to_string()
            }
        }
    }
}

/// Reads the overrides of a pod and its namespace and merges them with `config`.
pub fn resolve(
    pod_annotations: &BTreeMap<String, String>,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
    named_ports: &NamedPorts,
    config: &InjectorConfig,
) -> Result<Resolved, SkipReason> {
    let reader = Reader {
        pod: pod_annotations,
        namespace,
        namespace_annotations,
    };
    let mut notes = Vec::new();
    let ports = |key, names| {
        reader.read(
            key,
            |v| PortList::parse(v, names).map_err(|e| e.to_string()),
            PortList::default(),
        )
    };
    let skip_inbound_ports = ports(Key::SkipInboundPorts, Some(named_ports))?;
    let skip_outbound_ports = ports(Key::SkipOutboundPorts, None)?;
    let opaque_ports = ports(Key::OpaquePorts, Some(named_ports))?;

    let defaults = &config.proxy_resources;
    let (proxy_cpu_request, proxy_cpu_limit) = reader.request_and_limit(
        (Key::CpuRequest, &defaults.cpu_request),
        (Key::CpuLimit, &defaults.cpu_limit),
        &mut notes,
    )?;
    let (proxy_memory_request, proxy_memory_limit) = reader.request_and_limit(
        (Key::MemoryRequest, &defaults.memory_request),
        (Key::MemoryLimit, &defaults.memory_limit),
        &mut notes,
    )?;

    let proxy_log = reader.read(Key::LogLevel, values::log_filter, config.proxy_log.clone())?;
    let proxy_image = reader.read(Key::Image, values::image, config.proxy_image.clone())?;
    let native_sidecar = reader.read(Key::NativeSidecar, values::boolean, config.native_sidecar)?;
    let require_identity = reader.read(Key::RequireIdentity, values::boolean, false)?;
    // Requiring identity without mesh TLS would keep the proxy from
    // starting: refuse the pod with the reason instead.
    if require_identity.value
        && config.trust_anchors_pem.is_none()
        && let Some((object, _, raw)) = reader.raw(Key::RequireIdentity)
    {
        return Err(reader.malformed(
            Key::RequireIdentity,
            object,
            raw,
            "mesh TLS is off: the injector has no trust anchors".to_string(),
        ));
    }

    let settings = Settings {
        skip_inbound_ports,
        skip_outbound_ports,
        opaque_ports,
        proxy_cpu_request,
        proxy_cpu_limit,
        proxy_memory_request,
        proxy_memory_limit,
        proxy_log,
        proxy_image,
        native_sidecar,
        require_identity,
    };
    // The override lines come first, in the table's order; adjustments after.
    let mut lines = reader.notes(&settings);
    lines.append(&mut notes);
    Ok(Resolved {
        settings,
        notes: lines,
        warnings: unknown_keys(pod_annotations, namespace, namespace_annotations),
    })
}

struct Reader<'a> {
    pod: &'a BTreeMap<String, String>,
    namespace: &'a str,
    namespace_annotations: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    /// The raw value of `key`: the pod's, else the namespace's.
    fn raw(&self, key: Key) -> Option<(Object, Source, &str)> {
        let annotation = key.annotation();
        if let Some(value) = self.pod.get(&annotation) {
            return Some((Object::Pod, Source::Pod, value));
        }
        let value = self.namespace_annotations.get(&annotation)?;
        Some((
            Object::Namespace(self.namespace.to_string()),
            Source::Namespace,
            value,
        ))
    }

    /// The parsed value of `key`, or `default` when neither object sets it.
    fn read<T>(
        &self,
        key: Key,
        parse: impl Fn(&str) -> Result<T, String>,
        default: T,
    ) -> Result<Sourced<T>, SkipReason> {
        let Some((object, source, raw)) = self.raw(key) else {
            return Ok(Sourced {
                value: default,
                source: Source::Default,
            });
        };
        match parse(raw) {
            Ok(value) => Ok(Sourced { value, source }),
            Err(problem) => Err(self.malformed(key, object, raw, problem)),
        }
    }

    fn malformed(&self, key: Key, object: Object, raw: &str, problem: String) -> SkipReason {
        SkipReason::MalformedOverride {
            annotation: key.annotation(),
            value: raw.to_string(),
            object,
            problem,
            expected: key.expected(),
        }
    }

    /// A request and its limit, made consistent: a default moves to fit the
    /// user's value; two user values that clash are malformed.
    fn request_and_limit(
        &self,
        (request_key, request_default): (Key, &Option<Quantity>),
        (limit_key, limit_default): (Key, &Option<Quantity>),
        notes: &mut Vec<String>,
    ) -> Result<(SourcedQuantity, SourcedQuantity), SkipReason> {
        let quantity = |v: &str| Quantity::parse(v).map(Some).map_err(|e| e.to_string());
        let mut request = self.read(request_key, quantity, request_default.clone())?;
        let mut limit = self.read(limit_key, quantity, limit_default.clone())?;
        let (Some(req), Some(lim)) = (&request.value, &limit.value) else {
            return Ok((request, limit));
        };
        if req <= lim {
            return Ok((request, limit));
        }
        match (request.source, limit.source) {
            (Source::Pod | Source::Namespace, Source::Pod | Source::Namespace) => {
                let limit_object = match limit.source {
                    Source::Pod => Object::Pod,
                    _ => Object::Namespace(self.namespace.to_string()),
                };
                let problem = format!(
                    "the request is above the limit {lim} set by {} on {limit_object}",
                    limit_key.annotation()
                );
                let (object, raw) = match self.raw(request_key) {
                    Some((object, _, raw)) => (object, raw.to_string()),
                    None => (Object::Pod, req.to_string()),
                };
                Err(self.malformed(request_key, object, &raw, problem))
            }
            // Only the request was asked for: the default limit makes room for it.
            (Source::Pod | Source::Namespace, _) => {
                notes.push(format!(
                    "{} raised to {req} to fit {}",
                    describe(limit_key),
                    request_key.annotation()
                ));
                limit = Sourced {
                    value: Some(req.clone()),
                    source: Source::Adjusted,
                };
                Ok((request, limit))
            }
            // Only the limit was asked for (or the defaults clash): lower the
            // request, as the API server rejects a request above its limit.
            _ => {
                notes.push(format!(
                    "{} lowered to {lim} to fit {}",
                    describe(request_key),
                    limit_key.annotation()
                ));
                request = Sourced {
                    value: Some(lim.clone()),
                    source: Source::Adjusted,
                };
                Ok((request, limit))
            }
        }
    }

    /// One line per key set on the pod or namespace, with its effective value.
    fn notes(&self, settings: &Settings) -> Vec<String> {
        let quantity = |q: &Option<Quantity>| {
            q.as_ref()
                .map_or_else(|| "none".to_string(), Quantity::to_string)
        };
        let ports = |p: &PortList| {
            if p.is_empty() {
                "none".to_string()
            } else {
                p.to_string()
            }
        };
        KEYS.iter()
            .filter_map(|key| {
                let (object, _, _) = self.raw(*key)?;
                let effective = match key {
                    Key::SkipInboundPorts => ports(&settings.skip_inbound_ports.value),
                    Key::SkipOutboundPorts => ports(&settings.skip_outbound_ports.value),
                    Key::OpaquePorts => ports(&settings.opaque_ports.value),
                    Key::CpuRequest => quantity(&settings.proxy_cpu_request.value),
                    Key::CpuLimit => quantity(&settings.proxy_cpu_limit.value),
                    Key::MemoryRequest => quantity(&settings.proxy_memory_request.value),
                    Key::MemoryLimit => quantity(&settings.proxy_memory_limit.value),
                    Key::LogLevel => settings.proxy_log.value.clone(),
                    Key::Image => settings.proxy_image.value.clone(),
                    Key::NativeSidecar => settings.native_sidecar.value.to_string(),
                    Key::RequireIdentity => settings.require_identity.value.to_string(),
                };
                Some(format!("{} on {object}: {effective}", key.annotation()))
            })
            .collect()
    }
}

/// Warnings for keys under `config.weft.dev/` that weft does not know (typos).
pub fn unknown_keys(
    pod_annotations: &BTreeMap<String, String>,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
) -> Vec<String> {
    let known: Vec<&str> = KEYS.iter().map(|k| k.name()).collect();
    let namespace = Object::Namespace(namespace.to_string());
    let on_pod = pod_annotations.keys().map(|k| (k, &Object::Pod));
    let on_namespace = namespace_annotations.keys().map(|k| (k, &namespace));
    on_pod
        .chain(on_namespace)
        .filter_map(|(key, object)| {
            let name = key.strip_prefix(CONFIG_PREFIX)?;
            if known.contains(&name) {
                return None;
            }
            Some(format!(
                "weft: annotation {} on {object} is not a weft setting and is ignored (known: {})",
                quote(key),
                known.join(", ")
            ))
        })
        .collect()
}

/// `proxy cpu request` for `proxy-cpu-request`.
fn describe(key: Key) -> String {
    key.name().replace('-', " ")
}

#[cfg(test)]
#[path = "overrides_tests.rs"]
mod tests;
