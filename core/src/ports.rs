//! Port lists in weft's annotations (`25, 443,8000-8100`, or `grpc,admin-http`)
//! parsed into one canonical form: sorted, overlapping and adjacent ranges
//! merged, written `a,b-c`. The same text goes to `weft-init` and the proxy,
//! so two spellings of one list inject identical pods.
//!
//! Names are container-port names of the pod (TCP ports of its containers and
//! init containers); a name used by several containers means all its ports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[cfg(feature = "planner")]
use k8s_openapi::api::core::v1::PodSpec;
use serde::{Serialize, Serializer};

/// Entries longer than this are shortened in error messages.
const MAX_ENTRY_SHOWN: usize = 40;

/// A canonical set of TCP ports: sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortList {
    ranges: Vec<(u16, u16)>,
}

/// Why a port list does not parse; each names the offending entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortListError {
    /// Two commas in a row, or a leading or trailing comma.
    #[error("entry {position} is empty (two commas in a row, or a comma at an end)")]
    EmptyEntry {
        /// 1-based position of the entry.
        position: usize,
    },
    /// A number that is not a TCP port.
    #[error("{entry:?} is not a port number (1-65535)")]
    NotAPort {
        /// The entry as written (shortened).
        entry: String,
    },
    /// `8100-8000`.
    #[error("the range {entry:?} ends before it starts")]
    InvertedRange {
        /// The entry as written (shortened).
        entry: String,
    },
    /// A name where only numbers are accepted (`skip-outbound-ports`).
    #[error("{entry:?} is not a port number or range (port names are not accepted here)")]
    NameNotAllowed {
        /// The entry as written (shortened).
        entry: String,
    },
    /// A name no container port of the pod carries.
    #[error("no TCP container port of the pod is named {name:?} ({})", known_names(.known))]
    UnknownName {
        /// The name as written (shortened).
        name: String,
        /// The pod's named TCP ports, to help spot a typo.
        known: Vec<String>,
    },
    /// Neither a number, a range nor a valid port name.
    #[error("{entry:?} is neither a port, a range like 8000-8100, nor a container port name")]
    Invalid {
        /// The entry as written (shortened).
        entry: String,
    },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "the pod has no named TCP ports".to_string()
    } else {
        format!("named ports: {}", known.join(", "))
    }
}

/// The pod's named TCP container ports, for resolving names in port lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamedPorts {
    by_name: BTreeMap<String, BTreeSet<u16>>,
}

impl NamedPorts {
    /// Collects the named TCP ports of every container and init container.
    #[cfg(feature = "planner")]
    pub fn from_spec(spec: &PodSpec) -> Self {
        let mut by_name: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for port in containers.flat_map(|c| c.ports.iter().flatten()) {
            let tcp = port.protocol.as_deref().is_none_or(|p| p == "TCP");
            let number = u16::try_from(port.container_port).ok().filter(|p| *p != 0);
            if let (true, Some(name), Some(number)) = (tcp, port.name.as_ref(), number) {
                by_name.entry(name.clone()).or_default().insert(number);
            }
        }
        Self { by_name }
    }

    /// The ports carrying `name`, if any.
    pub fn get(&self, name: &str) -> Option<&BTreeSet<u16>> {
        self.by_name.get(name)
    }

    fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

impl PortList {
    /// Parses a comma list of ports, ranges and (when `names` is given) port
    /// names. Blanks around entries are ignored; an empty value is an empty list.
    pub fn parse(input: &str, names: Option<&NamedPorts>) -> Result<Self, PortListError> {
        if input.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut ranges = Vec::new();
        for (index, raw) in input.split(',').enumerate() {
            let entry = raw.trim();
            if entry.is_empty() {
                return Err(PortListError::EmptyEntry {
                    position: index + 1,
                });
            }
            parse_entry(entry, names, &mut ranges)?;
        }
        Ok(Self::from_ranges(ranges))
    }

    /// Builds the canonical list from any inclusive ranges (each `start <= end`).
    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.retain(|(start, end)| start <= end);
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                // Overlapping or adjacent (`80,81` is `80-81`).
                Some(last) if u32::from(start) <= u32::from(last.1) + 1 => {
                    last.1 = last.1.max(end);
                }
                _ => merged.push((start, end)),
            }
        }
        Self { ranges: merged }
    }

    /// True when the list holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The canonical ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// True when `port` is in the list.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&port))
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for PortList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn parse_entry(
    entry: &str,
    names: Option<&NamedPorts>,
    ranges: &mut Vec<(u16, u16)>,
) -> Result<(), PortListError> {
    if is_digits(entry) {
        let port = parse_port(entry, entry)?;
        ranges.push((port, port));
        return Ok(());
    }
    if let Some((start, end)) = entry.split_once('-') {
        let (start, end) = (start.trim(), end.trim());
        if is_digits(start) && is_digits(end) {
            let (start, end) = (parse_port(start, entry)?, parse_port(end, entry)?);
            if start > end {
                return Err(PortListError::InvertedRange {
                    entry: shorten(entry),
                });
            }
            ranges.push((start, end));
            return Ok(());
        }
    }
    if !is_port_name(entry) {
        return Err(PortListError::Invalid {
            entry: shorten(entry),
        });
    }
    let Some(names) = names else {
        return Err(PortListError::NameNotAllowed {
            entry: shorten(entry),
        });
    };
    let ports = names.get(entry).ok_or_else(|| PortListError::UnknownName {
        name: shorten(entry),
        known: names.names(),
    })?;
    ranges.extend(ports.iter().map(|p| (*p, *p)));
    Ok(())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_port(digits: &str, entry: &str) -> Result<u16, PortListError> {
    // Leading zeros are harmless; past that, more than five digits is out of range.
    let significant = digits.trim_start_matches('0');
    significant
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && significant.len() <= 5)
        .ok_or_else(|| PortListError::NotAPort {
            entry: shorten(entry),
        })
}

/// A Kubernetes container-port name (IANA_SVC_NAME): at most 15 of
/// `[a-z0-9-]`, at least one letter, no leading, trailing or double hyphen.
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn shorten(entry: &str) -> String {
    match entry.char_indices().nth(MAX_ENTRY_SHOWN) {
        Some((cut, _)) => format!("{}...", &entry[..cut]),
        None => entry.to_string(),
    }
}

#[cfg(test)]
#[path = "ports_tests.rs"]
mod tests;
