//! Certificate lifetimes: the defaults and the window a certificate is valid in.

use std::time::{Duration, SystemTime};

use crate::Error;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Default lifetime of the webhook CA: one year. It only signs the serving
/// certificate, and re-running `weft install` replaces both.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Default lifetime of the webhook serving certificate: 90 days, the
/// customary lifetime of a public TLS certificate; rotate it by re-running
/// `weft install` (or let cert-manager renew it).
pub const DEFAULT_SERVING_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Default lifetime of the mesh trust anchor: ten years. Rotating it means
/// distributing a new bundle to every proxy, so it should be rare; its key
/// lives offline.
pub const DEFAULT_TRUST_ANCHOR_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Default lifetime of the mesh issuer: one year. A new issuer from the same
/// anchor needs no change in any proxy.
pub const DEFAULT_ISSUER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Default lifetime of a proxy's certificate: 24 hours, renewed by the
/// proxy well before it ends.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far `notBefore` is set in the past, so that an API server whose clock
/// runs a little behind ours accepts a certificate made a moment ago.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// The longest lifetime accepted: keeps dates far inside what X.509 (and the
/// date arithmetic underneath) can represent.
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 365 * DAY.as_secs());

/// The `(not_before, not_after)` window for a certificate made at `now` that
/// lives `validity`.
pub(crate) fn window(
    now: SystemTime,
    validity: Duration,
) -> Result<(SystemTime, SystemTime), Error> {
    if validity.is_zero() || validity > MAX_VALIDITY {
        return Err(Error::InvalidValidity {
            validity,
            max: MAX_VALIDITY,
        });
    }
    let invalid = || Error::InvalidValidity {
        validity,
        max: MAX_VALIDITY,
    };
    let not_before = now.checked_sub(CLOCK_SKEW_ALLOWANCE).ok_or_else(invalid)?;
    let not_after = now.checked_add(validity).ok_or_else(invalid)?;
    Ok((not_before, not_after))
}

/// `t` without its fraction of a second, as X.509 encodes it, so a date
/// returned beside a certificate equals the one read back from it.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        // Before 1970 (never for a certificate made now): leave it.
        Err(_) => t,
    }
}

/// Unix seconds (as X.509 dates are read) to a `SystemTime`; `None` when the
/// platform's clock cannot represent the date.
pub(crate) fn from_unix(seconds: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_backdated_for_clock_skew() -> Result<(), Error> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (not_before, not_after) = window(now, DEFAULT_SERVING_VALIDITY)?;
        assert_eq!(
            now.duration_since(not_before).ok(),
            Some(CLOCK_SKEW_ALLOWANCE)
        );
        assert_eq!(not_after.duration_since(now).ok(), Some(90 * DAY));
        Ok(())
    }

    #[test]
    fn zero_and_huge_validities_are_refused() {
        let now = SystemTime::now();
        assert!(matches!(
            window(now, Duration::ZERO),
            Err(Error::InvalidValidity { .. })
        ));
        assert!(matches!(
            window(now, Duration::from_secs(u64::MAX)),
            Err(Error::InvalidValidity { .. })
        ));
    }

    #[test]
    fn unix_seconds_convert_both_ways_of_the_epoch() {
        assert_eq!(
            from_unix(10),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            from_unix(-10),
            Some(SystemTime::UNIX_EPOCH - Duration::from_secs(10))
        );
    }
}
