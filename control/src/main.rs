//! `weft-control`: identity and destination in one process.
//!
//! Thin on purpose: read the flags (each also from its env var, see
//! `docs/architecture.md`), load the issuer, start the watches, and serve
//! identity and destination over TLS and the admin port over plain HTTP
//! until SIGTERM. Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use weft_control::admin::{self, Readiness};
use weft_control::destination;
use weft_control::identity::issuer::{self, IssuerFiles, IssuerReloader, IssuerStore};
use weft_control::identity::metrics::IdentityMetrics;
use weft_control::identity::token::{self, KubeTokenReviewer};
use weft_control::identity::{Identity, IdentityConfig};
use weft_control::serve::{self, Limits};

/// weft's control plane: identity (signs proxy certificates) and
/// destination (who is behind an address).
#[derive(Debug, Parser)]
#[command(name = "weft-control", version)]
struct Args {
    /// HTTPS address of identity: POST /v1/certify.
    #[arg(
        long,
        env = "WEFT_CONTROL_IDENTITY_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    identity_listen: SocketAddr,
    /// HTTPS address of destination: GET /v1/resolve, /v1/watch.
    #[arg(
        long,
        env = "WEFT_CONTROL_DESTINATION_LISTEN",
        default_value = "0.0.0.0:8086"
    )]
    destination_listen: SocketAddr,
    /// Plain HTTP address: /metrics, /ready, /live.
    #[arg(
        long,
        env = "WEFT_CONTROL_ADMIN_LISTEN",
        default_value = "0.0.0.0:9990"
    )]
    admin_listen: SocketAddr,
    /// Issuer certificate (PEM), reloaded when it changes.
    #[arg(
        long,
        env = "WEFT_CONTROL_ISSUER_CERT_FILE",
        default_value = "/var/run/weft/identity/issuer/tls.crt"
    )]
    issuer_cert_file: PathBuf,
    /// The issuer's private key (PKCS#8 PEM).
    #[arg(
        long,
        env = "WEFT_CONTROL_ISSUER_KEY_FILE",
        default_value = "/var/run/weft/identity/issuer/tls.key"
    )]
    issuer_key_file: PathBuf,
    /// Trust bundle (PEM) the issuer must chain to; without it the check
    /// is skipped.
    #[arg(long, env = "WEFT_CONTROL_TRUST_ANCHORS_FILE")]
    trust_anchors_file: Option<PathBuf>,
    /// SPIFFE trust domain of the identities signed.
    #[arg(
        long,
        env = "WEFT_CONTROL_TRUST_DOMAIN",
        default_value = "cluster.local"
    )]
    trust_domain: String,
    /// The control plane's namespace (its own identity and Service names).
    #[arg(
        long,
        env = "WEFT_CONTROL_CONTROL_PLANE_NAMESPACE",
        default_value = "weft"
    )]
    control_plane_namespace: String,
    /// Lifetime of a proxy's certificate, e.g. 24h, 90m.
    #[arg(
        long,
        env = "WEFT_CONTROL_IDENTITY_CERTIFICATE_LIFETIME",
        default_value = "24h",
        value_parser = parse_lifetime
    )]
    identity_certificate_lifetime: Duration,
    /// Kubeconfig (default: in-cluster, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<String>,
    /// Tracing filter (levels or target=level directives).
    #[arg(long, env = "WEFT_CONTROL_LOG", default_value = "info")]
    log: String,
}

/// A lifetime such as `24h`, `90m` or `1h 30m`, at least one minute.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("expected a duration such as 24h or 90m: {e}"))?;
    let lifetime = Duration::try_from(signed).map_err(|e| e.to_string())?;
    if lifetime < Duration::from_secs(60) {
        return Err("must be at least 1m".to_owned());
    }
    Ok(lifetime)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    weft_runtime::init_logging(&args.log)?;

    let mut registry = Registry::default();
    let readiness = Readiness::new();
    let client = weft_runtime::kube_client(args.kubeconfig.as_deref()).await?;

    // Identity. A missing issuer at start is not fatal (the Secret may not
    // be projected yet): the process stays unready until one loads.
    let metrics = IdentityMetrics::register(registry.sub_registry_with_prefix("weft_identity"));
    let issuers = Arc::new(IssuerStore::new());
    let files = IssuerFiles {
        cert: args.issuer_cert_file.clone(),
        key: args.issuer_key_file.clone(),
        trust_anchors: args.trust_anchors_file.clone(),
    };
    let mut reloader = IssuerReloader::new(files, issuers.clone(), metrics.clone());
    let _ = reloader.poll().await;
    let mut config = IdentityConfig::new(&args.trust_domain, &args.control_plane_namespace);
    config.leaf_lifetime = args.identity_certificate_lifetime;
    let reviewer = KubeTokenReviewer::new(client.clone(), token::DEFAULT_REVIEW_TIMEOUT);
    let identity = Arc::new(Identity::new(config, Arc::new(reviewer), issuers, metrics)?);
    identity.refresh_serving();
    tokio::spawn(reloader.run(issuer::DEFAULT_RELOAD_INTERVAL, {
        let identity = identity.clone();
        move || identity.refresh_serving()
    }));
    readiness.add("identity", {
        let identity = identity.clone();
        move || identity.is_ready()
    });

    // Destination.
    let destination_metrics = destination::Metrics::new();
    destination_metrics.register(&mut registry);
    let destination = destination::start(
        client,
        destination::Config {
            trust_domain: args.trust_domain.clone(),
            ..destination::Config::default()
        },
        destination_metrics,
    );
    readiness.add("destination", {
        let destination = destination.clone();
        move || destination.is_ready()
    });

    let handshake_failures = Counter::<u64>::default();
    registry.register(
        "weft_control_tls_handshake_failures",
        "TLS handshakes on the identity and destination ports that failed or timed out",
        handshake_failures.clone(),
    );
    let on_handshake_error: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        handshake_failures.inc();
    });

    let limits = Limits::default();
    let tls = identity.tls_config()?;
    let identity_listener = serve::bind(args.identity_listen).await?;
    let destination_listener = serve::bind(args.destination_listen).await?;
    let admin_listener = serve::bind(args.admin_listen).await?;
    tracing::info!(
        identity = %identity_listener.local_addr()?,
        destination = %destination_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        version = env!("CARGO_PKG_VERSION"),
        "weft-control serving"
    );

    let (trigger, shutdown) = serve::shutdown_channel();
    let servers = [
        tokio::spawn(serve::serve_tls(
            identity_listener,
            tls.clone(),
            identity.router(),
            limits,
            shutdown.clone(),
            on_handshake_error.clone(),
        )),
        tokio::spawn(serve::serve_tls(
            destination_listener,
            tls,
            destination::router(destination.clone()),
            limits,
            shutdown.clone(),
            on_handshake_error,
        )),
        tokio::spawn(serve::serve_http(
            admin_listener,
            admin::router(Arc::new(registry), readiness),
            limits,
            shutdown,
        )),
    ];

    weft_runtime::shutdown_signal().await;
    // Watch streams never end by themselves; end them so the drain can.
    destination.close_watches();
    trigger.drain(limits.drain_timeout).await;
    for server in servers {
        server.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes_read_as_people_write_them() {
        assert_eq!(
            parse_lifetime("24h"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_lifetime("1h 30m"),
            Ok(std::time::Duration::from_secs(5_400))
        );
        for bad in ["", "soon", "-1h", "30s"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }
}
