//! `weft check`: a first version that looks at the mesh's certificates on
//! disk (the output of `weft certs`, or files given one by one) and warns
//! of those that expire soon, have expired, or do not chain to the trust
//! anchors. Checks against a live cluster come later.
//!
//! The evaluation is pure ([`evaluate`]); `run` reads the files and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use weft_certs::{CertificateSummary, Role, TrustBundle};

use crate::certs::lifetime;

/// Arguments of `weft check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of PEM certificates (*.crt, *.pem) to check, such as the
    /// output folders of `weft certs` (repeatable).
    #[arg(long, value_name = "DIR")]
    certs_dir: Vec<PathBuf>,
    /// The trust bundle issuers must chain to (`ca-bundle.crt`).
    #[arg(long, value_name = "FILE")]
    trust_anchors_file: Option<PathBuf>,
    /// An issuer certificate to check (repeatable).
    #[arg(long, value_name = "FILE")]
    issuer_certificate_file: Vec<PathBuf>,
    /// Warn about anchors and issuers that expire within this time: a
    /// number and a unit, s, m, h, d or y.
    #[arg(long, value_name = "LIFETIME", default_value = "60d", value_parser = lifetime::parse)]
    warn_within: Duration,
}

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// All is well.
    Ok,
    /// Act soon.
    Warning,
    /// Broken now.
    Error,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How it weighs.
    pub level: Level,
    /// What was found, and what to do.
    pub message: String,
}

impl Finding {
    fn new(level: Level, message: String) -> Self {
        Finding { level, message }
    }
}

/// A file to check: its name for the report and its text (or why it could
/// not be read).
pub struct Input {
    /// The name shown.
    pub name: String,
    /// The PEM text, or the read error.
    pub text: Result<String, String>,
}

/// The findings for `inputs` at `now`; `anchors` is the bundle issuers must
/// chain to (when absent, the trust anchors found among the inputs).
pub fn evaluate(
    inputs: &[Input],
    anchors: Option<&TrustBundle>,
    now: SystemTime,
    warn_within: Duration,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut certificates: Vec<(&str, String, CertificateSummary)> = Vec::new();
    for input in inputs {
        let text = match &input.text {
            Ok(text) => text,
            Err(error) => {
                findings.push(Finding::new(
                    Level::Error,
                    format!("{}: {error}", input.name),
                ));
                continue;
            }
        };
        match weft_certs::summarize(text) {
            Ok(summaries) => certificates.extend(
                summaries
                    .into_iter()
                    .map(|summary| (input.name.as_str(), text.clone(), summary)),
            ),
            Err(error) => findings.push(Finding::new(
                Level::Error,
                format!("{}: no readable certificate ({error})", input.name),
            )),
        }
    }

    let found_anchors = certificates
        .iter()
        .filter(|(_, _, s)| s.role == Role::Root)
        .map(|(_, text, _)| text.as_str())
        .collect::<String>();
    let found_bundle = TrustBundle::from_pem(&found_anchors).ok();
    let bundle = anchors.or(found_bundle.as_ref());

    for (name, text, summary) in &certificates {
        findings.push(expiry(name, summary, now, warn_within));
        if summary.role == Role::Issuer
            && let Some(bundle) = bundle
        {
            findings.push(match bundle.signed_by_anchor(text) {
                Ok(true) => Finding::new(
                    Level::Ok,
                    format!("issuer {name} is signed by a trust anchor"),
                ),
                Ok(false) => Finding::new(
                    Level::Error,
                    format!(
                        "issuer {name} ({}) is not signed by any trust anchor: proxies would refuse every certificate it signs",
                        summary.subject
                    ),
                ),
                Err(error) => Finding::new(Level::Error, format!("issuer {name}: {error}")),
            });
        }
    }
    findings
}

/// The expiry finding of one certificate.
fn expiry(name: &str, s: &CertificateSummary, now: SystemTime, warn_within: Duration) -> Finding {
    let what = match s.role {
        Role::Root => "trust anchor",
        Role::Issuer => "issuer",
        Role::Leaf => "certificate",
    };
    let label = format!("{what} {name} ({})", s.subject);
    let until = lifetime::rfc3339(s.not_after);
    let Ok(left) = s.not_after.duration_since(now) else {
        return Finding::new(
            Level::Error,
            format!("{label} expired on {until}: {}", advice(s.role)),
        );
    };
    if now < s.not_before {
        return Finding::new(
            Level::Warning,
            format!(
                "{label} is not valid before {}",
                lifetime::rfc3339(s.not_before)
            ),
        );
    }
    // A proxy's leaf lives a day and is renewed by its proxy: only its
    // expiry is news.
    if s.role != Role::Leaf && left < warn_within {
        return Finding::new(
            Level::Warning,
            format!(
                "{label} expires in {} (on {until}): {}",
                lifetime::human(left),
                advice(s.role)
            ),
        );
    }
    Finding::new(
        Level::Ok,
        format!("{label} is valid until {until} ({})", lifetime::human(left)),
    )
}

fn advice(role: Role) -> &'static str {
    match role {
        Role::Root => {
            "rotate the trust anchor through a bundle (README, \"Rotating certificates\")"
        }
        Role::Issuer => {
            "make a new issuer (weft certs issuer) and apply it (README, \"Rotating certificates\")"
        }
        Role::Leaf => "its owner must renew it",
    }
}

/// Runs `weft check`: the report on stdout; exit 1 when anything is broken.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.certs_dir.is_empty()
        && args.trust_anchors_file.is_none()
        && args.issuer_certificate_file.is_empty()
    {
        bail!(
            "nothing to check: pass --certs-dir, --trust-anchors-file or --issuer-certificate-file"
        );
    }
    let mut inputs = Vec::new();
    for dir in &args.certs_dir {
        inputs.extend(read_dir(dir)?);
    }
    for path in &args.issuer_certificate_file {
        inputs.push(read(path));
    }
    let anchors = match &args.trust_anchors_file {
        Some(path) => {
            let input = read(path);
            let bundle = match &input.text {
                Ok(text) => Some(TrustBundle::from_pem(text).with_context(|| {
                    format!("{} is not a bundle of trust anchors", path.display())
                })?),
                Err(_) => None,
            };
            inputs.push(input);
            bundle
        }
        None => None,
    };

    let findings = evaluate(
        &inputs,
        anchors.as_ref(),
        SystemTime::now(),
        args.warn_within,
    );
    println!("weft certificates\n-----------------");
    for finding in &findings {
        let mark = match finding.level {
            Level::Ok => "√",
            Level::Warning => "‼",
            Level::Error => "×",
        };
        println!("{mark} {}", finding.message);
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    println!(
        "\n{} ({errors} error{}, {warnings} warning{})",
        if errors > 0 {
            "× certificate checks failed"
        } else {
            "√ certificate checks passed"
        },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read(path: &Path) -> Input {
    Input {
        name: path.display().to_string(),
        text: std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}")),
    }
}

/// The `*.crt` and `*.pem` files of `dir`, by name.
fn read_dir(dir: &Path) -> anyhow::Result<Vec<Input>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        let is_cert = path
            .extension()
            .is_some_and(|ext| ext == "crt" || ext == "pem");
        if is_cert && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        bail!("{} holds no *.crt or *.pem file", dir.display());
    }
    paths.sort();
    Ok(paths.iter().map(|p| read(p)).collect())
}

#[cfg(test)]
mod tests {
    use weft_certs::{DEFAULT_ISSUER_NAME, TrustAnchor};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn input(name: &str, text: &str) -> Input {
        Input {
            name: name.to_owned(),
            text: Ok(text.to_owned()),
        }
    }

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    #[test]
    fn healthy_certificates_pass_and_soon_expiring_ones_warn() -> anyhow::Result<()> {
        let anchor = TrustAnchor::generate("anchor", 3650 * DAY)?;
        let issuer = anchor.issue_issuer(DEFAULT_ISSUER_NAME, 30 * DAY)?;
        let inputs = [
            input("ca.crt", anchor.cert_pem()),
            input("issuer.crt", &issuer.cert_pem),
        ];
        let now = SystemTime::now();
        let findings = evaluate(&inputs, None, now, 60 * DAY);
        assert_eq!(
            levels(&findings),
            [Level::Ok, Level::Warning, Level::Ok],
            "{findings:?}"
        );
        assert!(findings[1].message.contains("expires in 29 days"));
        assert!(findings[1].message.contains("weft certs issuer"));
        assert!(findings[2].message.contains("signed by a trust anchor"));
        // With a shorter horizon the issuer is fine.
        let findings = evaluate(&inputs, None, now, 7 * DAY);
        assert!(
            findings.iter().all(|f| f.level == Level::Ok),
            "{findings:?}"
        );
        // Later, it has expired.
        let findings = evaluate(&inputs, None, now + 31 * DAY, 7 * DAY);
        assert_eq!(findings[1].level, Level::Error);
        assert!(findings[1].message.contains("expired on"));
        Ok(())
    }

    #[test]
    fn an_issuer_from_another_anchor_is_an_error() -> anyhow::Result<()> {
        let ours = TrustAnchor::generate("ours", 3650 * DAY)?;
        let theirs = TrustAnchor::generate("theirs", 3650 * DAY)?;
        let issuer = theirs.issue_issuer(DEFAULT_ISSUER_NAME, 365 * DAY)?;
        let bundle = TrustBundle::from_pem(ours.cert_pem())?;
        let findings = evaluate(
            &[input("issuer.crt", &issuer.cert_pem)],
            Some(&bundle),
            SystemTime::now(),
            60 * DAY,
        );
        assert_eq!(levels(&findings), [Level::Ok, Level::Error]);
        assert!(
            findings[1]
                .message
                .contains("not signed by any trust anchor")
        );
        Ok(())
    }

    #[test]
    fn unreadable_inputs_are_errors_not_panics() {
        let inputs = [
            input("garbage.crt", "not pem"),
            Input {
                name: "missing.crt".to_owned(),
                text: Err("cannot read it: no such file".to_owned()),
            },
        ];
        let findings = evaluate(&inputs, None, SystemTime::now(), 60 * DAY);
        assert_eq!(levels(&findings), [Level::Error, Level::Error]);
    }
}
