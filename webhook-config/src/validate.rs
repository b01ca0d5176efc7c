//! The checks behind `RenderOptions::validate`: each value that reaches a
//! manifest must be what Kubernetes (or the injector) accepts, so a mistake
//! is an error naming the option, not a broken or surprising manifest.

use crate::Error;

/// The longest image reference accepted (as for the `proxy-image` annotation).
const MAX_IMAGE_LEN: usize = 512;

/// The error for an option whose value is refused.
pub(crate) fn invalid(field: &'static str, value: &str, reason: &str) -> Error {
    Error::InvalidOption {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// An RFC 1123 label, as Kubernetes requires of a namespace name.
pub(crate) fn dns_label(field: &'static str, s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            s,
            "must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

/// An image reference: `[registry[:port]/]path[:tag][@digest]`.
pub(crate) fn image_reference(field: &'static str, s: &str) -> Result<(), Error> {
    let reason = if s.is_empty() {
        "must not be empty"
    } else if s.len() > MAX_IMAGE_LEN {
        "must be at most 512 characters"
    } else if s.chars().any(char::is_whitespace) {
        "must not contain whitespace"
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@'))
    {
        "may only contain letters, digits and . _ - / : @"
    } else if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "must start with a letter or digit"
    } else if s.ends_with([':', '@', '/']) {
        "must not end with ':', '@' or '/'"
    } else {
        return Ok(());
    };
    Err(invalid(field, s, reason))
}

/// A SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'.
pub(crate) fn trust_domain(s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "trust domain",
            s,
            "must be a SPIFFE trust domain such as cluster.local (lowercase letters, digits, '.', '-', '_')",
        ))
    }
}

/// A tracing filter: a level, or `target=level` directives joined by commas
/// (the grammar of `config.weft.dev/proxy-log-level`).
pub(crate) fn log_level(s: &str) -> Result<(), Error> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|level| level.eq_ignore_ascii_case(l));
    let is_target = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'))
    };
    let ok = !s.is_empty()
        && s.split(',')
            .all(|directive| match directive.split_once('=') {
                Some((target, level)) => is_target(target) && is_level(level),
                None => is_level(directive),
            });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "log level",
            s,
            "expected trace, debug, info, warn, error or off, or target=level directives joined by commas",
        ))
    }
}

/// A webhook URL as Kubernetes accepts it: https, a host, no user info,
/// query or fragment.
pub(crate) fn webhook_url(s: &str) -> Result<(), Error> {
    let reason = match s.strip_prefix("https://") {
        None => "must start with https:// (the API server only calls webhooks over TLS)",
        Some(_) if s.len() > 2048 => "must be at most 2048 characters",
        Some(_) if s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            "must not contain whitespace"
        }
        Some(_) if s.contains(['?', '#']) => "must not have a query or fragment",
        Some(rest) => {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                "must name a host"
            } else if authority.contains('@') {
                "must not carry user info"
            } else {
                return Ok(());
            }
        }
    };
    Err(invalid("webhook URL", s, reason))
}

/// A PEM block with `label` (a light check: the certificates module parses
/// them for real; this catches swapped or empty files).
pub(crate) fn pem_block(field: &'static str, s: &str, label: &str) -> Result<(), Error> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    if s.contains(&begin) && s.contains(&end) {
        Ok(())
    } else {
        Err(invalid(
            field,
            s.lines().next().unwrap_or_default(),
            &format!("expected a PEM {label} block"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_accept_registries_ports_tags_and_digests() -> Result<(), Error> {
        for ok in [
            "weft-proxy",
            "ghcr.io/weft-dev/weft-proxy:v0.1.0",
            "localhost:5000/weft/proxy:dev",
            "ghcr.io/weft-dev/weft-proxy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            image_reference("image", ok)?;
        }
        for bad in [
            "",
            "a b",
            "a\nb",
            "image\t",
            "-leading",
            "x:",
            "quote\"d",
            "a{b}",
            &"a".repeat(513),
        ] {
            assert!(image_reference("image", bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn namespaces_must_be_dns_labels() {
        for bad in [
            "",
            "Weft",
            "weft_1",
            "-weft",
            "weft-",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(dns_label("namespace", bad).is_err(), "{bad:?}");
        }
        assert!(dns_label("namespace", "weft-system").is_ok());
    }

    #[test]
    fn log_levels_follow_the_proxy_log_level_grammar() {
        for ok in [
            "info",
            "DEBUG",
            "weft_injector=debug,info",
            "hyper::proto=warn",
        ] {
            assert!(log_level(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "loud", "a=", "=info", "info,", "a=b=c", "info debug"] {
            assert!(log_level(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn webhook_urls_must_be_plain_https() {
        assert!(webhook_url("https://127.0.0.1:8443/mutate").is_ok());
        for bad in [
            "http://127.0.0.1/mutate",
            "https:///mutate",
            "https://u:p@host/mutate",
            "https://host/mutate?x=1",
            "https://host/mutate#x",
            "https://host/ mutate",
        ] {
            assert!(webhook_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trust_domains_are_lowercase_dns_like() {
        assert!(trust_domain("cluster.local").is_ok());
        for bad in ["", "Cluster.local", ".a", "a.", "a..b", "a/b", "a b"] {
            assert!(trust_domain(bad).is_err(), "{bad:?}");
        }
    }
}
