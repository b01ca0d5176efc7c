//! `weft certs`: make the mesh's trust anchor and issuer, and the bundle that
//! carries an anchor rotation.
//!
//! - `anchor --out DIR`: a self-signed root (`DIR/ca.crt`, `DIR/ca.key`).
//!   Keep the key offline: it is needed only to make issuers.
//! - `issuer --anchor DIR --out DIR2`: an issuer signed by it
//!   (`DIR2/issuer.crt`, `DIR2/issuer.key`), what identity signs with.
//! - `bundle FILE...`: one trust bundle from several anchors (old and new
//!   during a rotation).
//!
//! The certificates themselves come from `weft-certs`; this module reads
//! and writes the files and explains what to do next.

mod files;
pub(crate) mod lifetime;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use weft_certs::{DEFAULT_ISSUER_NAME, DEFAULT_TRUST_ANCHOR_NAME, TrustAnchor, TrustBundle};

use self::files::Output;

/// The anchor's files in its folder.
pub const ANCHOR_CERT: &str = "ca.crt";
/// The anchor's key in its folder.
pub const ANCHOR_KEY: &str = "ca.key";
/// The issuer's certificate in its folder.
pub const ISSUER_CERT: &str = "issuer.crt";
/// The issuer's key in its folder.
pub const ISSUER_KEY: &str = "issuer.key";

/// Arguments of `weft certs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make a trust anchor: the root every proxy trusts (ECDSA P-256).
    Anchor(AnchorArgs),
    /// Make an issuer signed by a trust anchor: what identity signs proxy
    /// certificates with (a CA limited to issuing leaves).
    Issuer(IssuerArgs),
    /// Print one trust bundle from several anchor files (for an anchor
    /// rotation: the old and the new anchor).
    Bundle(BundleArgs),
}

/// `weft certs anchor`.
#[derive(Debug, clap::Args)]
struct AnchorArgs {
    /// Folder for ca.crt and ca.key (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Lifetime: a number and a unit, s, m, h, d or y (365 days).
    #[arg(long, value_name = "LIFETIME", default_value = "3650d", value_parser = lifetime::parse)]
    validity: Duration,
    /// The anchor's common name.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TRUST_ANCHOR_NAME)]
    common_name: String,
    /// Replace files that already exist.
    #[arg(long)]
    force: bool,
}

/// `weft certs issuer`.
#[derive(Debug, clap::Args)]
struct IssuerArgs {
    /// Folder holding the trust anchor (ca.crt and ca.key).
    #[arg(long, value_name = "DIR")]
    anchor: PathBuf,
    /// Folder for issuer.crt and issuer.key (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Lifetime (never past the anchor's): a number and a unit, s, m, h, d or y.
    #[arg(long, value_name = "LIFETIME", default_value = "365d", value_parser = lifetime::parse)]
    validity: Duration,
    /// The issuer's common name.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ISSUER_NAME)]
    common_name: String,
    /// Replace files that already exist.
    #[arg(long)]
    force: bool,
}

/// `weft certs bundle`.
#[derive(Debug, clap::Args)]
struct BundleArgs {
    /// PEM files holding trust anchors (each may hold several).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the bundle here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs `weft certs`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Anchor(args) => anchor(args),
        Command::Issuer(args) => issuer(args),
        Command::Bundle(args) => bundle(args),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn anchor(args: AnchorArgs) -> anyhow::Result<()> {
    let anchor = TrustAnchor::generate(&args.common_name, args.validity)
        .context("making the trust anchor")?;
    let cert = args.out.join(ANCHOR_CERT);
    let key = args.out.join(ANCHOR_KEY);
    files::write_all(
        &args.out,
        &[
            Output {
                path: cert.clone(),
                text: anchor.cert_pem(),
                secret: false,
            },
            Output {
                path: key.clone(),
                text: anchor.key_pem(),
                secret: true,
            },
        ],
        args.force,
    )?;
    eprintln!(
        "wrote the trust anchor {} (valid until {}) and its key {}.\n\
         Keep the key offline: it is needed only to make issuers.\n\
         next: weft certs issuer --anchor {} --out <DIR>",
        cert.display(),
        lifetime::rfc3339(anchor.not_after()),
        key.display(),
        args.out.display()
    );
    Ok(())
}

fn issuer(args: IssuerArgs) -> anyhow::Result<()> {
    let cert_path = args.anchor.join(ANCHOR_CERT);
    let key_path = args.anchor.join(ANCHOR_KEY);
    let anchor = TrustAnchor::from_pem(
        &files::read(&cert_path, "the anchor certificate")?,
        &files::read(&key_path, "the anchor key")?,
    )
    .with_context(|| {
        format!(
            "{} and {} are not a usable trust anchor",
            cert_path.display(),
            key_path.display()
        )
    })?;
    let now = SystemTime::now();
    if anchor.not_after() <= now {
        bail!(
            "the trust anchor {} expired on {}: make a new one and rotate it (see the README)",
            cert_path.display(),
            lifetime::rfc3339(anchor.not_after())
        );
    }
    let pair = anchor
        .issue_issuer(&args.common_name, args.validity)
        .context("making the issuer")?;
    let not_after = weft_certs::not_after(&pair.cert_pem)?;
    let cert = args.out.join(ISSUER_CERT);
    let key = args.out.join(ISSUER_KEY);
    files::write_all(
        &args.out,
        &[
            Output {
                path: cert.clone(),
                text: &pair.cert_pem,
                secret: false,
            },
            Output {
                path: key.clone(),
                text: &pair.key_pem,
                secret: true,
            },
        ],
        args.force,
    )?;
    if not_after < now + args.validity - Duration::from_secs(3600) {
        eprintln!(
            "warning: the issuer ends with its trust anchor on {} (asked for {})",
            lifetime::rfc3339(not_after),
            lifetime::human(args.validity)
        );
    }
    eprintln!(
        "wrote the issuer {} (valid until {}) and its key {}.\n\
         next: weft install --identity-trust-anchors-file {} \
         --identity-issuer-certificate-file {} --identity-issuer-key-file {}",
        cert.display(),
        lifetime::rfc3339(not_after),
        key.display(),
        cert_path.display(),
        cert.display(),
        key.display(),
    );
    Ok(())
}

fn bundle(args: BundleArgs) -> anyhow::Result<()> {
    let mut bundles = Vec::new();
    for path in &args.files {
        let text = files::read(path, "the anchor file")?;
        bundles.push(
            TrustBundle::from_pem(&text)
                .with_context(|| format!("{} is not a bundle of trust anchors", path.display()))?,
        );
    }
    let merged = TrustBundle::merge(&bundles);
    let now = SystemTime::now();
    for anchor in merged.anchors() {
        if anchor.not_after() <= now {
            eprintln!(
                "warning: {} expired on {}; drop it from the bundle once no issuer chains to it",
                anchor.subject(),
                lifetime::rfc3339(anchor.not_after())
            );
        }
    }
    let pem = merged.to_pem();
    match &args.out {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            files::write_all(
                dir.unwrap_or_else(|| std::path::Path::new(".")),
                &[Output {
                    path: path.clone(),
                    text: &pem,
                    secret: false,
                }],
                true,
            )?;
            eprintln!(
                "wrote {} trust anchors to {}",
                merged.anchors().len(),
                path.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lifetime;

    #[test]
    fn the_flag_defaults_are_the_library_defaults() {
        assert_eq!(
            lifetime::parse("3650d"),
            Ok(weft_certs::DEFAULT_TRUST_ANCHOR_VALIDITY)
        );
        assert_eq!(
            lifetime::parse("365d"),
            Ok(weft_certs::DEFAULT_ISSUER_VALIDITY)
        );
    }
}
