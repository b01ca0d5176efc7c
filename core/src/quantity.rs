//! Kubernetes resource quantities (`100m`, `1.5`, `64Mi`, `1e3`): validation
//! and comparison, so a request above its limit is caught here with a clear
//! reason instead of by the API server rejecting the injected pod.
//!
//! A quantity is kept as the text the user wrote (the API server normalises
//! it) and its value in nano-units (1e-9 of a core or of a byte), which is the
//! finest precision Kubernetes keeps; finer fractions round up, as there.

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

/// Longest quantity text accepted; real ones are a handful of characters.
const MAX_LEN: usize = 64;
/// Nano-units in one base unit.
const NANOS: u128 = 1_000_000_000;

/// A validated, non-negative Kubernetes quantity.
#[derive(Clone, Debug)]
pub struct Quantity {
    text: String,
    nanos: u128,
}

/// Why a string is not a Kubernetes quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing but whitespace.
    #[error("the quantity is empty")]
    Empty,
    /// Longer than any real quantity.
    #[error("the quantity is longer than {MAX_LEN} characters")]
    TooLong,
    /// A leading `-`.
    #[error("a resource quantity cannot be negative")]
    Negative,
    /// No digit before the suffix.
    #[error("no number before the unit")]
    NoNumber,
    /// Not one of the units Kubernetes knows.
    #[error(
        "unknown unit {0:?} (expected one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like e3)"
    )]
    UnknownSuffix(String),
    /// So large (or so many digits) that no cluster would accept it.
    #[error("the quantity is too large")]
    TooLarge,
}

impl Quantity {
    /// Parses a quantity, ignoring surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(QuantityError::TooLong);
        }
        let nanos = to_nanos(text)?;
        Ok(Self {
            text: text.to_string(),
            nanos,
        })
    }

    /// `n` thousandths of a core, written `<n>m`.
    pub fn millicores(n: u32) -> Self {
        Self {
            text: format!("{n}m"),
            nanos: u128::from(n) * 1_000_000,
        }
    }

    /// `n` mebibytes, written `<n>Mi`.
    pub fn mebibytes(n: u32) -> Self {
        Self {
            text: format!("{n}Mi"),
            nanos: u128::from(n) * (1 << 20) * NANOS,
        }
    }

    /// The quantity as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value in nano-units (1e-9 of the base unit), rounded up.
    pub fn nanos(&self) -> u128 {
        self.nanos
    }
}

// Two quantities are equal when they are the same amount (`1Gi` == `1024Mi`),
// which is what request/limit comparisons need.
impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// `<sign>?<digits>[.<digits>]<suffix>` to nano-units.
fn to_nanos(text: &str) -> Result<u128, QuantityError> {
    let unsigned = match text.as_bytes().first() {
        Some(b'-') => return Err(QuantityError::Negative),
        Some(b'+') => &text[1..],
        _ => text,
    };
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::NoNumber);
    }
    if frac_part.contains('.') {
        // `1.2.3`: the second dot ends the number and reads as a bad unit.
        return Err(QuantityError::UnknownSuffix(format!(".{}", frac_part)));
    }
    let (exp10, exp2) = suffix_exponents(suffix)?;

    // The significant digits, as one integer scaled by 10^-frac_len.
    let frac_part = frac_part.trim_end_matches('0');
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut mantissa: u128 = 0;
    for d in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')))
            .ok_or(QuantityError::TooLarge)?;
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| QuantityError::TooLarge)?;
    let scaled = mantissa
        .checked_mul(1u128 << exp2)
        .ok_or(QuantityError::TooLarge)?;
    // 9 for nano-units, minus the fraction's digits, plus the unit's power of ten.
    let exp = 9 - frac_len + exp10;
    if exp >= 0 {
        let exp = u32::try_from(exp).map_err(|_| QuantityError::TooLarge)?;
        10u128
            .checked_pow(exp)
            .and_then(|p| scaled.checked_mul(p))
            .ok_or(QuantityError::TooLarge)
    } else {
        // Finer than a nano-unit: round up, as Kubernetes does.
        match u32::try_from(-exp).ok().and_then(|e| 10u128.checked_pow(e)) {
            Some(divisor) => Ok(scaled.div_ceil(divisor)),
            // 10^39 exceeds any u128, so the quotient is below one.
            None => Ok(u128::from(scaled > 0)),
        }
    }
}

/// The powers of ten and of two a suffix multiplies by.
fn suffix_exponents(suffix: &str) -> Result<(i64, u32), QuantityError> {
    let exps = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => return Ok((decimal_exponent(suffix)?, 0)),
    };
    Ok(exps)
}

/// `e3`, `E-2`, `e+6`: an integer power of ten.
fn decimal_exponent(suffix: &str) -> Result<i64, QuantityError> {
    let unknown = || QuantityError::UnknownSuffix(suffix.to_string());
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or_else(unknown)?;
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    // Beyond a few digits the value is absurd either way; refuse rather than overflow.
    let magnitude: i64 = digits
        .trim_start_matches('0')
        .parse::<i64>()
        .ok()
        .filter(|m| *m <= 1000)
        .or_else(|| digits.bytes().all(|b| b == b'0').then_some(0))
        .ok_or(QuantityError::TooLarge)?;
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> u128 {
        match Quantity::parse(s) {
            Ok(q) => q.nanos(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn decimal_and_binary_units() {
        assert_eq!(nanos("1"), NANOS);
        assert_eq!(nanos("100m"), NANOS / 10);
        assert_eq!(nanos("1.5"), 1_500_000_000);
        assert_eq!(nanos("64Mi"), 64 * (1 << 20) * NANOS);
        assert_eq!(nanos("1Ki"), 1024 * NANOS);
        assert_eq!(nanos("2k"), 2000 * NANOS);
        assert_eq!(nanos("1M"), 1_000_000 * NANOS);
        assert_eq!(nanos("1G"), 1_000_000_000 * NANOS);
        assert_eq!(nanos("1Ei"), (1u128 << 60) * NANOS);
        assert_eq!(nanos("1E"), 10u128.pow(18) * NANOS);
        assert_eq!(nanos("5n"), 5);
        assert_eq!(nanos("5u"), 5000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("+2"), 2 * NANOS);
        assert_eq!(nanos(".5"), NANOS / 2);
        assert_eq!(nanos("5."), 5 * NANOS);
        assert_eq!(nanos("  10m "), 10_000_000);
    }

    #[test]
    fn exponents() {
        assert_eq!(nanos("1e3"), 1000 * NANOS);
        assert_eq!(nanos("1E3"), 1000 * NANOS);
        assert_eq!(nanos("1e+3"), 1000 * NANOS);
        assert_eq!(nanos("15e-1"), 1_500_000_000);
        assert_eq!(nanos("1e0"), NANOS);
    }

    #[test]
    fn finer_than_a_nano_rounds_up() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1.0000000001"), NANOS + 1);
        assert_eq!(nanos("1e-60"), 1);
        assert_eq!(nanos("0e-60"), 0);
        assert_eq!(nanos("0.000000000000000000000000000000000000000000001"), 1);
    }

    #[test]
    fn equal_amounts_compare_equal_whatever_the_spelling() {
        let q = |s| Quantity::parse(s).ok();
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("0.1"), q("100m"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("101m") > q("0.1"));
        assert!(q("1Mi") > q("1M"));
    }

    #[test]
    fn keeps_the_text_as_written() {
        let q = Quantity::parse(" 1e3 ").ok();
        assert_eq!(q.as_ref().map(Quantity::as_str), Some("1e3"));
        assert_eq!(Quantity::millicores(10).as_str(), "10m");
        assert_eq!(Quantity::mebibytes(20).as_str(), "20Mi");
        assert_eq!(Some(Quantity::mebibytes(20)), Quantity::parse("20Mi").ok());
        assert_eq!(Some(Quantity::millicores(10)), Quantity::parse("0.01").ok());
    }

    #[test]
    fn malformed_quantities_are_typed_errors() {
        let err = |s: &str| Quantity::parse(s).err();
        assert_eq!(err(""), Some(QuantityError::Empty));
        assert_eq!(err("   "), Some(QuantityError::Empty));
        assert_eq!(err("-1"), Some(QuantityError::Negative));
        assert_eq!(err("Mi"), Some(QuantityError::NoNumber));
        assert_eq!(err("."), Some(QuantityError::NoNumber));
        assert_eq!(err("10mb"), Some(QuantityError::UnknownSuffix("mb".into())));
        assert_eq!(err("10 m"), Some(QuantityError::UnknownSuffix(" m".into())));
        assert_eq!(err("1e"), Some(QuantityError::UnknownSuffix("e".into())));
        assert_eq!(
            err("1e1.5"),
            Some(QuantityError::UnknownSuffix("e1.5".into()))
        );
        assert_eq!(
            err("1.2.3"),
            Some(QuantityError::UnknownSuffix(".2.3".into()))
        );
        assert_eq!(err("1ki"), Some(QuantityError::UnknownSuffix("ki".into())));
        assert_eq!(err("abc"), Some(QuantityError::NoNumber));
        assert_eq!(err("1e99999"), Some(QuantityError::TooLarge));
        assert_eq!(err("1e40"), Some(QuantityError::TooLarge));
        assert_eq!(err(&"9".repeat(40)), Some(QuantityError::TooLarge));
        assert_eq!(err(&"1".repeat(65)), Some(QuantityError::TooLong));
    }

    #[test]
    fn errors_explain_themselves() {
        let msg = QuantityError::UnknownSuffix("mb".into()).to_string();
        assert!(msg.contains("\"mb\"") && msg.contains("Mi"), "{msg}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn never_panics_on_quantity_like_text(s in "[+-]?[0-9.]{0,30}([eE][+-]?[0-9]{0,6}|[numkMGTPE]i?)?") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn integers_parse_exactly(n in 0u64..u64::MAX) {
            proptest::prop_assert_eq!(Quantity::parse(&n.to_string()).map(|q| q.nanos()), Ok(u128::from(n) * NANOS));
        }
    }
}
