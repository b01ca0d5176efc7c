//! `weft-injector`: the mutating admission webhook server.
//!
//! Thin on purpose: read the flags (each also from its env var, see
//! `docs/architecture.md`), start the namespace watch, the certificate
//! reloader and the Event publisher, and serve until SIGTERM. Everything
//! else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube::runtime::events::{Recorder, Reporter};
use weft_injector::InjectorConfig;
use weft_injector::anchors::{AnchorsReloader, read_anchors};
use weft_injector::config::PROXY_VERSION;
use weft_injector::events::{self, EventSender};
use weft_injector::metrics::Metrics;
use weft_injector::namespaces::{self, KubeNamespaces};
use weft_injector::server::{AppState, Limits, Server};
use weft_injector::tls::{self, CertReloader, CertResolver};

/// weft's mutating admission webhook: injects the weft proxy into pods.
// A flag given twice takes its last value, as with kubectl and most
// Kubernetes components, so a wrapper can append an override.
#[derive(Debug, Parser)]
#[command(name = "weft-injector", version, args_override_self = true)]
struct Args {
    /// HTTPS address: /mutate, /healthz, /readyz.
    #[arg(long, env = "WEFT_INJECTOR_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Plain HTTP address: /metrics, /healthz, /readyz (probes, Prometheus).
    #[arg(
        long,
        env = "WEFT_INJECTOR_ADMIN_LISTEN",
        default_value = "0.0.0.0:9995"
    )]
    admin_listen: SocketAddr,
    /// Serving certificate chain (PEM), reloaded when it changes.
    #[arg(
        long,
        env = "WEFT_INJECTOR_TLS_CERT_FILE",
        default_value = "/var/run/weft/tls/tls.crt"
    )]
    tls_cert_file: PathBuf,
    /// The serving certificate's private key (PEM).
    #[arg(
        long,
        env = "WEFT_INJECTOR_TLS_KEY_FILE",
        default_value = "/var/run/weft/tls/tls.key"
    )]
    tls_key_file: PathBuf,
    /// Default proxy image.
    #[arg(long, env = "WEFT_INJECTOR_PROXY_IMAGE", default_value_t = default_proxy_image())]
    proxy_image: String,
    /// Never injected; written to the weft.dev/control-plane-ns label.
    #[arg(
        long,
        env = "WEFT_INJECTOR_CONTROL_PLANE_NAMESPACE",
        default_value = "weft"
    )]
    control_plane_namespace: String,
    /// SPIFFE trust domain (WEFT_PROXY_IDENTITY_TRUST_DOMAIN).
    #[arg(
        long,
        env = "WEFT_INJECTOR_TRUST_DOMAIN",
        default_value = "cluster.local"
    )]
    trust_domain: String,
    /// Identity address (default weft-identity.<control-plane-ns>.svc.cluster.local:8080).
    #[arg(long, env = "WEFT_INJECTOR_IDENTITY_ADDR")]
    identity_addr: Option<String>,
    /// Destination address (default weft-destination.<control-plane-ns>.svc.cluster.local:8086).
    #[arg(long, env = "WEFT_INJECTOR_DESTINATION_ADDR")]
    destination_addr: Option<String>,
    /// PEM bundle written to WEFT_PROXY_TRUST_ANCHORS.
    #[arg(long, env = "WEFT_INJECTOR_TRUST_ANCHORS_FILE")]
    trust_anchors_file: Option<PathBuf>,
    /// Default sidecar mode: native (true) or classic (false).
    #[arg(
        long,
        env = "WEFT_INJECTOR_NATIVE_SIDECAR",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    native_sidecar: bool,
    /// Record Kubernetes Events (Injected, InjectionSkipped) on the pods' controllers.
    #[arg(
        long,
        env = "WEFT_INJECTOR_EVENTS",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    events: bool,
    /// Kubeconfig for the namespace watch (default: in-cluster, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<String>,
    /// Tracing filter (levels or target=level directives).
    #[arg(long, env = "WEFT_INJECTOR_LOG", default_value = "info")]
    log: String,
}

fn default_proxy_image() -> String {
    format!("ghcr.io/weft-dev/weft-proxy:{PROXY_VERSION}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    weft_runtime::init_logging(&args.log)?;

    let config = injector_config(&args)?;
    let metrics = Arc::new(Metrics::new());

    // A missing certificate is not fatal: cert-manager may not have issued
    // it yet. The server stays unready until the reloader finds one.
    let certs = Arc::new(CertResolver::new());
    let mut reloader = CertReloader::new(
        &args.tls_cert_file,
        &args.tls_key_file,
        certs.clone(),
        metrics.clone(),
    );
    let _ = reloader.poll().await;
    tokio::spawn(reloader.run(tls::DEFAULT_RELOAD_INTERVAL));

    let client = weft_runtime::kube_client(args.kubeconfig.as_deref()).await?;
    let namespaces = KubeNamespaces::spawn(client.clone(), namespaces::DEFAULT_MISS_TIMEOUT);

    let limits = Limits::default();
    let mut state = AppState::new(
        config,
        Arc::new(namespaces),
        certs.clone(),
        metrics.clone(),
        &limits,
    );
    if args.events {
        // The instance is the host name, which Kubernetes sets to the pod's
        // name: each replica keeps its own Event series.
        let recorder = Recorder::new(client, Reporter::from(events::REPORTING_CONTROLLER));
        let sender = EventSender::spawn(recorder, events::DEFAULT_QUEUE_CAPACITY, metrics);
        state = state.with_events(sender);
    }
    if let Some(path) = &args.trust_anchors_file {
        let reloader = AnchorsReloader::new(path, state.config_handle(), state.metrics().clone());
        tokio::spawn(reloader.run(tls::DEFAULT_RELOAD_INTERVAL));
    }
    let tls = Arc::new(tls::server_config(certs)?);
    let server = Server::bind(args.listen, args.admin_listen, state, tls, limits).await?;
    tracing::info!(
        listen = %server.https_addr()?,
        admin = %server.admin_addr()?,
        version = PROXY_VERSION,
        "weft-injector serving"
    );
    server.serve(weft_runtime::shutdown_signal()).await;
    Ok(())
}

/// The planner's configuration from the flags.
fn injector_config(args: &Args) -> anyhow::Result<InjectorConfig> {
    let mut config = InjectorConfig::new(&args.control_plane_namespace, &args.trust_domain)
        .with_proxy_image(&args.proxy_image)
        .with_native_sidecar(args.native_sidecar);
    if let Some(addr) = &args.identity_addr {
        config.identity_addr = addr.clone();
    }
    if let Some(addr) = &args.destination_addr {
        config.destination_addr = addr.clone();
    }
    if let Some(path) = &args.trust_anchors_file {
        // Catch a wrong file here rather than in every proxy of the mesh.
        let pem = read_anchors(path).context("--trust-anchors-file")?;
        config = config.with_trust_anchors(pem);
    }
    Ok(config)
}
