//! Port lists as `weft-proxy init` takes them: `25,8000-8100`.
//!
//! The injector writes the skip lists in canonical form (sorted, merged,
//! `a,b-c`); init accepts any order and overlap so a person can type them by
//! hand, and renders them back canonically.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of TCP ports; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// First port of the range (at least 1).
    pub first: u16,
    /// Last port of the range (at least `first`).
    pub last: u16,
}

impl PortRange {
    /// The range as iptables' `--dport` takes it: `25` or `8000:8100`.
    pub fn to_iptables(self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}:{}", self.first, self.last)
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A sorted list of disjoint, non-adjacent port ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortList(Vec<PortRange>);

/// Why a port list was refused; the text names the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortListError {
    /// An item is not a number from 1 to 65535.
    #[error("`{item}` is not a port (expected a number from 1 to 65535)")]
    NotAPort {
        /// The item as written.
        item: String,
    },
    /// A range whose end is below its start.
    #[error("`{item}` is an inverted range (expected low-high)")]
    Inverted {
        /// The item as written.
        item: String,
    },
}

impl PortList {
    /// The ranges, sorted and merged.
    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// True when the list holds no port.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds the canonical list from ranges in any order, merging overlaps
    /// and neighbours so the same set always renders the same way.
    pub fn from_ranges(mut ranges: Vec<PortRange>) -> Self {
        ranges.sort();
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(prev) if u32::from(r.first) <= u32::from(prev.last) + 1 => {
                    prev.last = prev.last.max(r.last);
                }
                _ => merged.push(r),
            }
        }
        Self(merged)
    }
}

fn parse_port(item: &str, text: &str) -> Result<u16, PortListError> {
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PortListError::NotAPort {
            item: item.to_owned(),
        }),
    }
}

impl FromStr for PortList {
    type Err = PortListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ranges = Vec::new();
        // An empty value (`--skip-inbound-ports=`) means "skip nothing", the
        // same as leaving the flag out; empty items between commas are
        // tolerated for the same reason.
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let range = match item.split_once('-') {
                Some((lo, hi)) => {
                    let first = parse_port(item, lo)?;
                    let last = parse_port(item, hi)?;
                    if last < first {
                        return Err(PortListError::Inverted {
                            item: item.to_owned(),
                        });
                    }
                    PortRange { first, last }
                }
                None => {
                    let p = parse_port(item, item)?;
                    PortRange { first: p, last: p }
                }
            };
            ranges.push(range);
        }
        Ok(Self::from_ranges(ranges))
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        match s.parse::<PortList>() {
            Ok(l) => l.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn canonical_form_sorts_and_merges() {
        assert_eq!(canon("25,8000-8100"), "25,8000-8100");
        assert_eq!(canon("8080, 25 ,80-90,85-95,96"), "25,80-96,8080");
        assert_eq!(canon("1-65535,22"), "1-65535");
        assert_eq!(canon("443,443"), "443");
        assert_eq!(canon("5-5"), "5");
        assert_eq!(canon(""), "");
        assert_eq!(canon(" , ,"), "");
    }

    #[test]
    fn bad_items_are_named() {
        assert_eq!(
            canon("25,0"),
            "error: `0` is not a port (expected a number from 1 to 65535)"
        );
        assert_eq!(
            canon("65536"),
            "error: `65536` is not a port (expected a number from 1 to 65535)"
        );
        assert_eq!(
            canon("http"),
            "error: `http` is not a port (expected a number from 1 to 65535)"
        );
        assert_eq!(
            canon("9-3"),
            "error: `9-3` is an inverted range (expected low-high)"
        );
        assert_eq!(
            canon("1-2-3"),
            "error: `1-2-3` is not a port (expected a number from 1 to 65535)"
        );
        assert_eq!(
            canon("-5"),
            "error: `-5` is not a port (expected a number from 1 to 65535)"
        );
    }

    #[test]
    fn iptables_form_uses_a_colon() {
        let l: PortList = "25,8000-8100".parse().expect("valid list");
        let rendered: Vec<String> = l.ranges().iter().map(|r| r.to_iptables()).collect();
        assert_eq!(rendered, ["25", "8000:8100"]);
    }
}
