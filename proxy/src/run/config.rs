//! `weft-proxy run` configuration, read from the `WEFT_PROXY_*` variables the
//! injector writes (docs/architecture.md, "Proxy environment").
//!
//! Reading goes through the small [`Env`] trait so tests hand in a `HashMap`
//! instead of mutating the process environment. Every bad value is a
//! [`ConfigError`] that names the variable, so a pod that fails to start says
//! which annotation or flag to fix.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::detect::Timeouts;
use weft_core::ports::PortList;

/// A source of configuration variables.
pub trait Env {
    /// The value of `name`, or `None` when it is unset or empty.
    fn var(&self, name: &'static str) -> Result<Option<String>, ConfigError>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match std::env::var(name) {
            Ok(value) => Ok(non_empty(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
        }
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self.get(name).cloned().and_then(non_empty))
    }
}

// The injector never writes an empty value; an empty one comes from a hand
// edited manifest and means "use the default", as an unset one does.
fn non_empty(value: String) -> Option<String> {
    if value.trim().is_empty() {
        None
    } else {
        Some(value)
    }
}

/// A configuration variable that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The value is not valid UTF-8.
    #[error("{name}: value is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        name: &'static str,
    },
    /// A variable that another setting makes necessary is unset.
    #[error("{name} is not set; it is required when {because}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// The setting that needs it.
        because: &'static str,
    },
    /// The value does not parse as what the variable holds.
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// The value as found.
        value: String,
        /// What was expected, or why it failed.
        reason: String,
    },
}

use weft_core::config::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, TAP_PORT};
/// Variable names, in the order docs/architecture.md lists them.
pub use weft_core::proxy_env as vars;

/// Everything `weft-proxy run` reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Tracing filter (`WEFT_PROXY_LOG`), already checked to parse.
    pub log: String,
    /// Where inbound (redirected to 4143) connections arrive.
    pub inbound_addr: SocketAddr,
    /// Where outbound (redirected to 4140) connections arrive.
    pub outbound_addr: SocketAddr,
    /// `/metrics`, `/ready`, `/live`, `/shutdown`.
    pub admin_addr: SocketAddr,
    /// Tap server address (validated; not served yet).
    pub tap_addr: SocketAddr,
    /// Destination ports forwarded as opaque TCP without detection.
    pub opaque_ports: PortList,
    /// How long in-flight work may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// Where a connection goes; the real default is `SO_ORIGINAL_DST`.
    pub inbound_target: Target,
    /// Same for outbound.
    pub outbound_target: Target,
    /// How long detection waits before going opaque.
    pub detect_timeouts: Timeouts,
    /// How long to wait for the upstream TCP handshake.
    pub connect_timeout: Duration,
    /// The pod this proxy runs in (downward API), for later identity and tap use.
    pub pod: PodInfo,
    /// Control-plane and identity settings used by mTLS.
    pub identity: IdentityConfig,
    /// Threads serving connections (`WEFT_PROXY_CORES`): 1 runs the proxy on
    /// one single-threaded runtime, more on a work-stealing one.
    pub cores: usize,
}

/// Where the proxy sends an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The address the client dialled, read with `SO_ORIGINAL_DST` (production).
    OrigDst,
    /// Always this address (tests and benchmarks without iptables).
    Fixed(SocketAddr),
}

/// The pod, as the downward API describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `status.podIP`.
    pub ip: Option<IpAddr>,
    /// `spec.serviceAccountName`.
    pub service_account: Option<String>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
}

/// Identity and control-plane settings; validated now, used by mTLS and tap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityConfig {
    /// SPIFFE trust domain.
    pub trust_domain: Option<String>,
    /// Projected service-account token path.
    pub token_file: Option<String>,
    /// `host:port` of the identity service.
    pub identity_addr: Option<String>,
    /// `host:port` of the destination service.
    pub destination_addr: Option<String>,
    /// The only identity the tap server accepts.
    pub tap_client_id: Option<String>,
    /// PEM bundle of trust anchors.
    pub trust_anchors: Option<String>,
    /// Refuse inbound connections without a verified client identity.
    pub inbound_require_identity: bool,
}

/// Detection timeouts: short while a partial client prefix is held back,
/// long while nobody has spoken (nothing is delayed then; see `detect`).
pub const DEFAULT_DETECT_TIMEOUTS: Timeouts = Timeouts {
    partial: Duration::from_millis(300),
    quiet: Duration::from_secs(10),
};
/// Upstream TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Config {
    /// Reads and validates every variable.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let log = match env.var(vars::LOG)? {
            Some(log) => {
                tracing_subscriber::EnvFilter::builder()
                    .parse(&log)
                    .map_err(|e| invalid(vars::LOG, &log, format!("not a log filter: {e}")))?;
                log
            }
            None => "info".to_owned(),
        };
        let opaque_ports = match env.var(vars::OPAQUE_PORTS)? {
            Some(text) => {
                PortList::parse(&text, None).map_err(|e| invalid(vars::OPAQUE_PORTS, &text, e))?
            }
            None => PortList::default(),
        };
        let shutdown_grace = match env.var(vars::SHUTDOWN_GRACE_PERIOD)? {
            Some(text) => parse_duration(&text)
                .map_err(|reason| invalid(vars::SHUTDOWN_GRACE_PERIOD, &text, reason))?,
            None => Duration::from_secs(30),
        };
        let pod = PodInfo {
            name: env.var(vars::POD_NAME)?,
            namespace: env.var(vars::POD_NAMESPACE)?,
            ip: parse_opt(env, vars::POD_IP, "an IP address")?,
            service_account: env.var(vars::SERVICE_ACCOUNT)?,
            node_name: env.var(vars::NODE_NAME)?,
        };
        let identity = IdentityConfig {
            trust_domain: checked(env, vars::IDENTITY_TRUST_DOMAIN, |v| {
                valid_dns_name(v)
                    .then_some(())
                    .ok_or("a DNS-style trust domain")
            })?,
            token_file: checked(env, vars::IDENTITY_TOKEN_FILE, |v| {
                v.starts_with('/').then_some(()).ok_or("an absolute path")
            })?,
            identity_addr: checked(env, vars::IDENTITY_ADDR, check_host_port)?,
            destination_addr: checked(env, vars::DESTINATION_ADDR, check_host_port)?,
            tap_client_id: checked(env, vars::TAP_CLIENT_ID, |v| {
                v.starts_with("spiffe://")
                    .then_some(())
                    .ok_or("a spiffe:// URI")
            })?,
            trust_anchors: checked(env, vars::TRUST_ANCHORS, |v| {
                v.contains("-----BEGIN CERTIFICATE-----")
                    .then_some(())
                    .ok_or("a PEM bundle of certificates")
            })?,
            inbound_require_identity: match env.var(vars::INBOUND_REQUIRE_IDENTITY)? {
                None => false,
                Some(v) => match v.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(
                            vars::INBOUND_REQUIRE_IDENTITY,
                            &v,
                            "expected true or false",
                        ));
                    }
                },
            },
        };
        Ok(Self {
            log,
            inbound_addr: addr(env, vars::INBOUND_LISTEN_ADDR, any(INBOUND_PORT))?,
            outbound_addr: addr(env, vars::OUTBOUND_LISTEN_ADDR, loopback(OUTBOUND_PORT))?,
            admin_addr: addr(env, vars::ADMIN_LISTEN_ADDR, any(ADMIN_PORT))?,
            tap_addr: addr(env, vars::TAP_LISTEN_ADDR, any(TAP_PORT))?,
            opaque_ports,
            shutdown_grace,
            inbound_target: target(env, vars::INBOUND_FIXED_TARGET)?,
            outbound_target: target(env, vars::OUTBOUND_FIXED_TARGET)?,
            detect_timeouts: DEFAULT_DETECT_TIMEOUTS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pod,
            identity,
            cores: cores(env)?,
        })
    }
}

/// The most threads `WEFT_PROXY_CORES` may ask for.
pub const MAX_CORES: usize = 64;

fn cores(env: &impl Env) -> Result<usize, ConfigError> {
    let Some(text) = env.var(vars::CORES)? else {
        return Ok(1);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CORES).contains(&n) => Ok(n),
        _ => Err(invalid(
            vars::CORES,
            &text,
            format!("expected a whole number of threads from 1 to {MAX_CORES}"),
        )),
    }
}

fn invalid(name: &'static str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn addr(
    env: &impl Env,
    name: &'static str,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let Some(text) = env.var(name)? else {
        return Ok(default);
    };
    text.parse()
        .map_err(|_| invalid(name, &text, "expected ip:port, e.g. 0.0.0.0:4143"))
}

/// `0.0.0.0:port`: a listener every pod address reaches.
fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// `127.0.0.1:port`: the outbound listener, reached only through the redirect.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn target(env: &impl Env, name: &'static str) -> Result<Target, ConfigError> {
    Ok(match parse_opt(env, name, "ip:port")? {
        Some(addr) => Target::Fixed(addr),
        None => Target::OrigDst,
    })
}

fn parse_opt<T: std::str::FromStr>(
    env: &impl Env,
    name: &'static str,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    env.var(name)?
        .map(|text| {
            text.trim()
                .parse()
                .map_err(|_| invalid(name, &text, format!("expected {expected}")))
        })
        .transpose()
}

fn checked(
    env: &impl Env,
    name: &'static str,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.var(name)? else {
        return Ok(None);
    };
    check(&value).map_err(|expected| invalid(name, &value, format!("expected {expected}")))?;
    Ok(Some(value))
}

fn check_host_port(value: &str) -> Result<(), &'static str> {
    const EXPECTED: &str = "host:port";
    let (host, port) = value.rsplit_once(':').ok_or(EXPECTED)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = host.parse::<IpAddr>().is_ok() || valid_dns_name(host);
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(EXPECTED)
    }
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses `30s`, `500ms`, `2m`, `1h` (one number, one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| "expected a number with a unit: ms, s, m or h (e.g. 30s)".to_owned())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a whole number followed by ms, s, m or h".to_owned())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit {unit:?}: expected ms, s, m or h")),
    }
    .ok_or_else(|| "duration too long".to_owned())?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error_for(pairs: &[(&str, &str)]) -> String {
        match Config::from_env(&env(pairs)) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_match_the_contract() -> Result<(), ConfigError> {
        let config = Config::from_env(&env(&[]))?;
        assert_eq!(config.log, "info");
        assert_eq!(config.inbound_addr, SocketAddr::from(([0, 0, 0, 0], 4143)));
        assert_eq!(
            config.outbound_addr,
            SocketAddr::from(([127, 0, 0, 1], 4140))
        );
        assert_eq!(config.admin_addr, SocketAddr::from(([0, 0, 0, 0], 4191)));
        assert_eq!(config.tap_addr, SocketAddr::from(([0, 0, 0, 0], 4190)));
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert!(config.opaque_ports.is_empty());
        assert_eq!(config.cores, 1);
        assert_eq!(config.inbound_target, Target::OrigDst);
        assert_eq!(config.outbound_target, Target::OrigDst);
        Ok(())
    }

    #[test]
    fn reads_what_the_injector_writes() -> Result<(), ConfigError> {
        let config = Config::from_env(&env(&[
            (vars::LOG, "warn,weft_proxy=debug"),
            (vars::OPAQUE_PORTS, "3306,8000-8100"),
            (vars::SHUTDOWN_GRACE_PERIOD, "45s"),
            (vars::POD_NAME, "web-0"),
            (vars::POD_NAMESPACE, "emojivoto"),
            (vars::POD_IP, "10.1.2.3"),
            (vars::SERVICE_ACCOUNT, "web"),
            (vars::NODE_NAME, "node-1"),
            (vars::IDENTITY_TRUST_DOMAIN, "cluster.local"),
            (
                vars::IDENTITY_TOKEN_FILE,
                "/var/run/secrets/weft.dev/identity/token",
            ),
            (
                vars::IDENTITY_ADDR,
                "weft-identity.weft.svc.cluster.local:8080",
            ),
            (
                vars::DESTINATION_ADDR,
                "weft-destination.weft.svc.cluster.local:8086",
            ),
            (
                vars::TAP_CLIENT_ID,
                "spiffe://cluster.local/ns/weft/sa/weft-tap",
            ),
        ]))?;
        assert_eq!(config.log, "warn,weft_proxy=debug");
        assert!(config.opaque_ports.contains(3306) && config.opaque_ports.contains(8050));
        assert_eq!(config.shutdown_grace, Duration::from_secs(45));
        assert_eq!(config.pod.ip, Some(IpAddr::from([10, 1, 2, 3])));
        assert_eq!(config.pod.namespace.as_deref(), Some("emojivoto"));
        assert_eq!(
            config.identity.tap_client_id.as_deref(),
            Some("spiffe://cluster.local/ns/weft/sa/weft-tap")
        );
        Ok(())
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (name, value) in [
            (vars::LOG, "info,=[bad"),
            (vars::INBOUND_LISTEN_ADDR, "4143"),
            (vars::OUTBOUND_LISTEN_ADDR, "localhost:4140"),
            (vars::ADMIN_LISTEN_ADDR, "0.0.0.0:99999"),
            (vars::TAP_LISTEN_ADDR, "nope"),
            (vars::OPAQUE_PORTS, "3306,mysql"),
            (vars::SHUTDOWN_GRACE_PERIOD, "30"),
            (vars::POD_IP, "10.1.2"),
            (vars::IDENTITY_TRUST_DOMAIN, "cluster..local"),
            (vars::IDENTITY_TOKEN_FILE, "token"),
            (vars::IDENTITY_ADDR, "weft-identity"),
            (vars::DESTINATION_ADDR, "weft-destination:http"),
            (vars::TAP_CLIENT_ID, "weft-tap"),
            (vars::TRUST_ANCHORS, "not pem"),
            (vars::INBOUND_REQUIRE_IDENTITY, "yes"),
            (vars::INBOUND_FIXED_TARGET, "127.0.0.1"),
        ] {
            let message = error_for(&[(name, value)]);
            assert!(
                message.starts_with(name),
                "{name}={value}: error {message:?} does not name the variable"
            );
        }
    }

    #[test]
    fn empty_means_default() -> Result<(), ConfigError> {
        let config = Config::from_env(&env(&[(vars::INBOUND_LISTEN_ADDR, "")]))?;
        assert_eq!(config.inbound_addr.port(), 4143);
        Ok(())
    }

    #[test]
    fn fixed_targets_replace_orig_dst() -> Result<(), ConfigError> {
        let config = Config::from_env(&env(&[(vars::OUTBOUND_FIXED_TARGET, "127.0.0.1:8080")]))?;
        assert_eq!(
            config.outbound_target,
            Target::Fixed(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(config.inbound_target, Target::OrigDst);
        Ok(())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
    }

    #[test]
    fn cores_are_a_small_whole_number() -> Result<(), ConfigError> {
        let config = Config::from_env(&env(&[(vars::CORES, "4")]))?;
        assert_eq!(config.cores, 4);
        for bad in ["0", "65", "two", "-1", "1.5"] {
            let message = error_for(&[(vars::CORES, bad)]);
            assert!(message.starts_with("WEFT_PROXY_CORES="), "{message}");
        }
        Ok(())
    }
}
