//! Lifetimes as an operator writes them on the command line (`10y`, `365d`,
//! `36h`, `90m`), and dates as the CLI prints them.

use std::time::{Duration, SystemTime};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
/// A year on the command line is 365 days (what `openssl -days` users mean).
const YEAR: u64 = 365 * DAY;

/// Parses `<number><unit>`, unit one of `s`, `m`, `h`, `d`, `y` (365 days).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 365d, 36h or 10y"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        "y" => YEAR,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use s, m, h, d or y"
            ));
        }
    };
    let total = number
        .checked_mul(seconds)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("{text:?} is not a usable lifetime"))?;
    Ok(Duration::from_secs(total))
}

/// `t` as RFC 3339 in UTC (`2035-06-01T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => format!("{t:?}"),
    }
}

/// A span in the largest unit that reads well: `3650 days`, `20 hours`.
pub fn human(span: Duration) -> String {
    let seconds = span.as_secs();
    if seconds >= 2 * DAY {
        format!("{} days", seconds / DAY)
    } else if seconds >= 2 * HOUR {
        format!("{} hours", seconds / HOUR)
    } else {
        format!("{} minutes", seconds / MINUTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_seconds_to_years() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("36h"), Ok(Duration::from_secs(36 * HOUR)));
        assert_eq!(parse("365d"), Ok(Duration::from_secs(YEAR)));
        assert_eq!(parse("10y"), Ok(Duration::from_secs(10 * YEAR)));
        for bad in [
            "",
            "10",
            "d",
            "-1d",
            "0d",
            "1.5d",
            "3 weeks",
            "99999999999999999y",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_and_spans_read_well() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(human(Duration::from_secs(3 * DAY + 5)), "3 days");
        assert_eq!(human(Duration::from_secs(20 * HOUR)), "20 hours");
        assert_eq!(human(Duration::from_secs(30 * MINUTE)), "30 minutes");
    }
}
