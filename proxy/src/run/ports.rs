//! Port lists as the injector writes them (`25,8000-8100`): parsing and lookup.
//!
//! `WEFT_PROXY_OPAQUE_PORTS` arrives in this canonical form; the proxy asks
//! one question of it per connection, "is this destination port listed?".

use std::fmt;
use std::ops::RangeInclusive;

/// Why a port list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortListError {
    /// An item is neither a port number nor a `low-high` range.
    #[error("{item:?} is not a port (1-65535) or a range low-high")]
    NotAPort {
        /// The offending item.
        item: String,
    },
    /// A range whose low end is above its high end.
    #[error("range {low}-{high} is inverted")]
    Inverted {
        /// Low end as written.
        low: u16,
        /// High end as written.
        high: u16,
    },
}

/// A set of TCP ports, kept as sorted, merged ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<RangeInclusive<u16>>,
}

impl PortSet {
    /// Parses a comma list of ports and ranges; an empty string is the empty set.
    pub fn parse(text: &str) -> Result<Self, PortListError> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (low, high) = match item.split_once('-') {
                Some((low, high)) => (parse_port(low, item)?, parse_port(high, item)?),
                None => {
                    let port = parse_port(item, item)?;
                    (port, port)
                }
            };
            if low > high {
                return Err(PortListError::Inverted { low, high });
            }
            ranges.push(low..=high);
        }
        ranges.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u16>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(*range.start()) <= u32::from(*last.end()) + 1 => {
                    let end = (*last.end()).max(*range.end());
                    *last = *last.start()..=end;
                }
                _ => merged.push(range),
            }
        }
        Ok(Self { ranges: merged })
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        // Few ranges in practice; a binary search keeps a long list cheap too.
        self.ranges
            .binary_search_by(|r| {
                if *r.end() < port {
                    std::cmp::Ordering::Less
                } else if *r.start() > port {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

fn parse_port(text: &str, item: &str) -> Result<u16, PortListError> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(PortListError::NotAPort {
            item: item.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_merges() {
        let set = PortSet::parse("8000-8100, 25,26,8050-8200,3306").expect("valid list");
        assert_eq!(set.to_string(), "25-26,3306,8000-8200");
        assert!(set.contains(25) && set.contains(26) && set.contains(8200));
        assert!(!set.contains(24) && !set.contains(27) && !set.contains(8201));
    }

    #[test]
    fn empty_is_empty() {
        let set = PortSet::parse("").expect("empty list");
        assert!(set.is_empty());
        assert!(!set.contains(80));
    }

    #[test]
    fn rejects_bad_items() {
        assert_eq!(
            PortSet::parse("80,http"),
            Err(PortListError::NotAPort {
                item: "http".into()
            })
        );
        assert!(matches!(
            PortSet::parse("0"),
            Err(PortListError::NotAPort { .. })
        ));
        assert!(matches!(
            PortSet::parse("70000"),
            Err(PortListError::NotAPort { .. })
        ));
        assert_eq!(
            PortSet::parse("90-80"),
            Err(PortListError::Inverted { low: 90, high: 80 })
        );
    }
}
