//! `weft install`: print weft's control plane for `| kubectl apply -f -`.
//!
//! The manifests come from `weft-webhook-config`; the webhook's CA and
//! serving certificate are made fresh on every run (or signed by a CA the
//! operator supplies), so re-running and re-applying is also how they are
//! rotated. With `--cert-manager`, cert-manager makes and renews them instead.
//! The mesh's trust anchors and issuer come from the `--identity-*` files
//! (made with `weft certs`), or are made for this install.

mod certificates;
mod identity;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use weft_webhook_config::{
    DEFAULT_LOG_LEVEL, DEFAULT_NAMESPACE, DEFAULT_REPLICAS, DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TRUST_DOMAIN, FailurePolicy, HA_REPLICAS, RenderOptions, Tls, VERSION, WebhookTarget,
};

/// Arguments of `weft install`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Apply the output with:\n  weft install | kubectl apply -f -\n\
Re-run the same command to rotate the webhook's certificates."
)]
pub struct Args {
    /// Namespace of the control plane.
    #[arg(long, value_name = "NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    control_plane_namespace: String,

    /// High availability: 3 injectors and 3 weft-controls, each on its own
    /// node (required pod anti-affinity), with PodDisruptionBudgets.
    #[arg(long)]
    ha: bool,

    /// Replicas of the injector and of weft-control [default: 2, or 3 with --ha].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    replicas: Option<u32>,

    /// Injector image [default: ghcr.io/weft-dev/weft-injector:<--image-tag>].
    #[arg(long, value_name = "IMAGE")]
    injector_image: Option<String>,

    /// Proxy image the injector adds to pods [default:
    /// ghcr.io/weft-dev/weft-proxy:<--image-tag>].
    #[arg(long, value_name = "IMAGE")]
    proxy_image: Option<String>,

    /// Registry (and path) of weft's default images, e.g. `localhost/weft`
    /// for images imported into a local node (ignored for an image given
    /// in full).
    #[arg(long, value_name = "REGISTRY", default_value = weft_webhook_config::IMAGE_REGISTRY)]
    registry: String,

    /// Tag of weft's default images (ignored for an image given in full).
    #[arg(long, value_name = "TAG", default_value = concat!("v", env!("CARGO_PKG_VERSION")))]
    image_tag: String,

    /// What the API server does when the injector cannot answer: Ignore
    /// creates the pod without the proxy, Fail refuses the pod.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = PolicyArg::Ignore, ignore_case = true)]
    webhook_failure_policy: PolicyArg,

    /// How long the API server waits for the injector (1 to 30 seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=30))]
    webhook_timeout_seconds: u32,

    /// Let cert-manager (cert-manager.io/v1, installed separately) make and
    /// renew the webhook certificates instead of this command.
    #[arg(long, conflicts_with_all = ["ca_cert_file", "ca_key_file"])]
    cert_manager: bool,

    /// SPIFFE trust domain of the mesh's identities.
    #[arg(long, value_name = "DOMAIN", default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,

    /// Injector log filter: a level (trace, debug, info, warn, error, off)
    /// or target=level directives joined by commas.
    #[arg(long, value_name = "FILTER", default_value = DEFAULT_LOG_LEVEL)]
    log_level: String,

    /// Point the webhook at this https URL instead of the Service (for a
    /// local injector next to a development API server).
    /// Not with --cert-manager, whose certificate names only the Service.
    #[arg(long, value_name = "URL", hide = true, conflicts_with = "cert_manager")]
    webhook_url: Option<String>,

    /// Sign the serving certificate with this CA (PEM) instead of a new one.
    #[arg(long, value_name = "FILE", requires = "ca_key_file")]
    ca_cert_file: Option<PathBuf>,

    /// The private key (PKCS#8 PEM) of --ca-cert-file.
    #[arg(long, value_name = "FILE", requires = "ca_cert_file")]
    ca_key_file: Option<PathBuf>,

    /// weft-control (identity and destination) image [default:
    /// ghcr.io/weft-dev/weft-control:<--image-tag>].
    #[arg(long, value_name = "IMAGE")]
    control_image: Option<String>,

    /// The mesh's trust anchors (PEM bundle, e.g. ca.crt from `weft certs
    /// anchor`) [default: a new anchor made for this install].
    #[arg(long, value_name = "FILE",
          requires_all = ["identity_issuer_certificate_file", "identity_issuer_key_file"])]
    identity_trust_anchors_file: Option<PathBuf>,

    /// The issuer identity signs with (issuer.crt from `weft certs issuer`).
    #[arg(long, value_name = "FILE",
          requires_all = ["identity_trust_anchors_file", "identity_issuer_key_file"])]
    identity_issuer_certificate_file: Option<PathBuf>,

    /// The issuer's private key (PKCS#8 PEM, issuer.key).
    #[arg(long, value_name = "FILE",
          requires_all = ["identity_trust_anchors_file", "identity_issuer_certificate_file"])]
    identity_issuer_key_file: Option<PathBuf>,
}

/// `--webhook-failure-policy`, spelled as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PolicyArg {
    #[value(name = "Ignore")]
    Ignore,
    #[value(name = "Fail")]
    Fail,
}

impl From<PolicyArg> for FailurePolicy {
    fn from(policy: PolicyArg) -> Self {
        match policy {
            PolicyArg::Ignore => FailurePolicy::Ignore,
            PolicyArg::Fail => FailurePolicy::Fail,
        }
    }
}

/// Runs `weft install`: the manifests on stdout, notes on stderr.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = options(&args)?;
    // Every option is checked before any key is made, so a typo costs
    // nothing and its error is the only one shown.
    options.validate().map_err(flag_error)?;

    if !args.cert_manager {
        let ca = match (&args.ca_cert_file, &args.ca_key_file) {
            (Some(cert), Some(key)) => certificates::load_ca(cert, key)?,
            _ => certificates::new_ca()?,
        };
        options.tls = certificates::serving(&ca, &options)?;
    }
    options.identity = Some(
        match (
            &args.identity_trust_anchors_file,
            &args.identity_issuer_certificate_file,
            &args.identity_issuer_key_file,
        ) {
            (Some(anchors), Some(cert), Some(key)) => identity::load(anchors, cert, key)?,
            _ => identity::generate()?,
        },
    );

    let manifests = weft_webhook_config::render(&options).context("rendering the manifests")?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(manifests.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the manifests to stdout")?;

    if args.cert_manager {
        eprintln!(
            "note: --cert-manager needs cert-manager (cert-manager.io/v1) in the cluster before this is applied"
        );
    }
    if std::io::stdout().is_terminal() {
        eprintln!("hint: apply with `weft install | kubectl apply -f -`");
    }
    Ok(ExitCode::SUCCESS)
}

/// The render options the flags ask for. TLS is filled in later (certificates
/// are only made once everything else is known to be valid).
fn options(args: &Args) -> anyhow::Result<RenderOptions> {
    let replicas = match (args.replicas, args.ha) {
        (Some(n), true) if n < 2 => {
            bail!(
                "--ha runs injectors on distinct nodes and needs --replicas of at least 2 (got {n})"
            )
        }
        (Some(n), _) => n,
        (None, true) => HA_REPLICAS,
        (None, false) => DEFAULT_REPLICAS,
    };
    check_tag(&args.image_tag)?;
    check_registry(&args.registry)?;
    let image = |name: &str| format!("{}/{name}:{}", args.registry, args.image_tag);
    let mut options = RenderOptions::new(Tls::CertManager);
    options.namespace = args.control_plane_namespace.clone();
    options.injector_image = args
        .injector_image
        .clone()
        .unwrap_or_else(|| image("weft-injector"));
    options.proxy_image = args
        .proxy_image
        .clone()
        .unwrap_or_else(|| image("weft-proxy"));
    options.control_image = args
        .control_image
        .clone()
        .unwrap_or_else(|| image("weft-control"));
    options.replicas = replicas;
    options.ha = args.ha;
    options.failure_policy = args.webhook_failure_policy.into();
    options.webhook_timeout_seconds = args.webhook_timeout_seconds;
    options.trust_domain = args.trust_domain.clone();
    options.log_level = args.log_level.clone();
    if let Some(url) = &args.webhook_url {
        options.webhook_target = WebhookTarget::Url(url.clone());
    }
    Ok(options)
}

/// The renderer's error, reworded to name the flag that set the value.
fn flag_error(err: weft_webhook_config::Error) -> anyhow::Error {
    let weft_webhook_config::Error::InvalidOption {
        field,
        value,
        reason,
    } = &err
    else {
        return err.into();
    };
    let flag = match *field {
        "namespace" => "--control-plane-namespace",
        "injector image" => "--injector-image",
        "proxy image" => "--proxy-image",
        "control image" => "--control-image",
        "replicas" => "--replicas",
        "webhook timeout" => "--webhook-timeout-seconds",
        "trust domain" => "--trust-domain",
        "log level" => "--log-level",
        "webhook URL" => "--webhook-url",
        _ => return err.into(),
    };
    anyhow::anyhow!("invalid {flag} {value:?}: {reason}")
}

/// An image tag as registries accept it: up to 128 of `[A-Za-z0-9_.-]`,
/// not starting with `.` or `-`.
fn check_registry(registry: &str) -> anyhow::Result<()> {
    let ok = !registry.is_empty()
        && registry.len() <= 200
        && !registry.starts_with('/')
        && !registry.ends_with('/')
        && !registry.contains("//")
        && registry.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'.' | b'-' | b'/' | b':')
        });
    if !ok {
        bail!(
            "invalid --registry {registry:?}: expected a registry and path without a tag, such as ghcr.io/weft-dev or localhost/weft"
        );
    }
    Ok(())
}

fn check_tag(tag: &str) -> anyhow::Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if !ok {
        bail!(
            "invalid --image-tag {tag:?}: expected up to 128 letters, digits, '_', '.' or '-' (e.g. v{VERSION})"
        );
    }
    Ok(())
}
