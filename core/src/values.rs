//! Validation of the free-text override values: the proxy log filter, the
//! proxy image and booleans. Each returns the canonical value to write, or a
//! sentence saying what is wrong (the caller adds which annotation it was).

/// Longest image reference accepted in `config.weft.dev/proxy-image`.
pub const MAX_IMAGE_LEN: usize = 512;

/// Levels `WEFT_PROXY_LOG` accepts, alone or after `target=`.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a log filter (`info`, `warn,weft_proxy=debug`) and returns it in
/// canonical form: entries trimmed, levels lower-cased, joined by `,`.
pub fn log_filter(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("the value is empty".to_string());
    }
    let mut canonical = Vec::new();
    for (index, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "entry {} is empty (two commas in a row, or a comma at an end)",
                index + 1
            ));
        }
        let (target, level) = match entry.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, entry),
        };
        let level = level.to_ascii_lowercase();
        if !LOG_LEVELS.contains(&level.as_str()) {
            return Err(format!(
                "{} is not a log level",
                crate::decision::quote(&level)
            ));
        }
        match target {
            Some(target) if !is_log_target(target) => {
                return Err(format!(
                    "{} is not a log target (letters, digits, _, :, - and . only)",
                    crate::decision::quote(target)
                ));
            }
            Some(target) => canonical.push(format!("{target}={level}")),
            None => canonical.push(level),
        }
    }
    Ok(canonical.join(","))
}

/// A Rust module path or span-free target name.
fn is_log_target(target: &str) -> bool {
    !target.is_empty()
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'))
}

/// Checks an image reference: one word of visible characters, at most 512 long.
/// The registry checks the rest; a bad reference then shows as a pull error.
pub fn image(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("the value is empty".to_string());
    }
    if value.len() > MAX_IMAGE_LEN {
        return Err(format!("it is longer than {MAX_IMAGE_LEN} characters"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".to_string());
    }
    Ok(value.to_string())
}

/// Exactly `true` or `false`, as the documented annotation says.
pub fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("it is not a boolean".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_and_directives() {
        assert_eq!(log_filter("info").as_deref(), Ok("info"));
        assert_eq!(log_filter("DEBUG").as_deref(), Ok("debug"));
        assert_eq!(log_filter("off").as_deref(), Ok("off"));
        assert_eq!(
            log_filter("warn, weft_proxy=debug ,hyper::proto=trace").as_deref(),
            Ok("warn,weft_proxy=debug,hyper::proto=trace")
        );
        assert_eq!(
            log_filter("weft-proxy = Info").as_deref(),
            Ok("weft-proxy=info")
        );
    }

    #[test]
    fn bad_log_filters_say_why() {
        assert_eq!(log_filter(""), Err("the value is empty".to_string()));
        assert_eq!(
            log_filter("verbose"),
            Err("\"verbose\" is not a log level".to_string())
        );
        assert_eq!(
            log_filter("info,,debug"),
            Err("entry 2 is empty (two commas in a row, or a comma at an end)".to_string())
        );
        assert_eq!(
            log_filter("=info").map_err(|e| e.contains("not a log target")),
            Err(true)
        );
        assert_eq!(
            log_filter("a b=info").map_err(|e| e.contains("not a log target")),
            Err(true)
        );
        assert_eq!(
            log_filter("a=b=info").map_err(|e| e.contains("not a log level")),
            Err(true)
        );
        assert_eq!(
            log_filter("a[span]=info").map_err(|e| e.contains("not a log target")),
            Err(true)
        );
    }

    #[test]
    fn images() {
        assert_eq!(
            image("ghcr.io/weft-dev/weft-proxy:v1").as_deref(),
            Ok("ghcr.io/weft-dev/weft-proxy:v1")
        );
        assert_eq!(
            image("registry:5000/proxy@sha256:0123456789abcdef").as_deref(),
            Ok("registry:5000/proxy@sha256:0123456789abcdef")
        );
        assert_eq!(image(""), Err("the value is empty".to_string()));
        assert!(image("a b").is_err());
        assert!(image(" proxy").is_err());
        assert!(image("proxy\n").is_err());
        assert!(image(&"a".repeat(MAX_IMAGE_LEN)).is_ok());
        assert!(image(&"a".repeat(MAX_IMAGE_LEN + 1)).is_err());
    }

    #[test]
    fn booleans_are_exact() {
        assert_eq!(boolean("true"), Ok(true));
        assert_eq!(boolean("false"), Ok(false));
        assert!(boolean("True").is_err());
        assert!(boolean("yes").is_err());
        assert!(boolean("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn validators_never_panic(s in "\\PC{0,80}") {
            let _ = log_filter(&s);
            let _ = image(&s);
            let _ = boolean(&s);
        }
    }
}
