//! Steps 4 to 6 of the demo, as a getting-started guide orders them:
//! `weft check --pre`, `weft install | kubectl apply -f -`, `weft check`.
//! `weft check` looks at certificates on disk and not yet at a cluster, so
//! each check step says so, runs it on the mesh's real certificates (the
//! files the install uses, then what the cluster holds), and shows the
//! cluster's side with the kubectl commands a user would type and the
//! conditions the demo waits on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::progress::Progress;
use super::shell;
use crate::cargo_bin::{Profile, WEFT_CLI};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::{images, install, webhook};

/// How long weft's control plane gets to become Available.
const CONTROL_PLANE_READY: Duration = Duration::from_secs(240);
/// The file names `weft certs` writes.
const ANCHOR_CERT: &str = "ca.crt";
const ANCHOR_KEY: &str = "ca.key";
const ISSUER_CERT: &str = "issuer.crt";
const ISSUER_KEY: &str = "issuer.key";
/// The kubectl commands of step 4: is the API server there, and may this
/// user create what `weft install` prints (a cluster-wide webhook).
const PREFLIGHT: &[&[&str]] = &[
    &["version"],
    &["get", "nodes"],
    &[
        "auth",
        "can-i",
        "create",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    ],
];

/// The mesh's trust anchor and issuer, made once per cluster folder with
/// `weft certs` so a second run installs the same identity (without them
/// `weft install` makes a new one on every run).
pub(super) struct Identity {
    root: PathBuf,
}

impl Identity {
    /// The identity folder of the cluster folder `dir`.
    pub(super) fn in_dir(dir: &Path) -> Self {
        Identity {
            root: dir.join("identity"),
        }
    }

    fn anchor_dir(&self) -> PathBuf {
        self.root.join("anchor")
    }

    fn issuer_dir(&self) -> PathBuf {
        self.root.join("issuer")
    }

    /// Where step 6 writes what the cluster holds.
    fn installed_dir(&self) -> PathBuf {
        self.root.join("installed")
    }

    fn files(&self) -> [PathBuf; 4] {
        [
            self.anchor_dir().join(ANCHOR_CERT),
            self.anchor_dir().join(ANCHOR_KEY),
            self.issuer_dir().join(ISSUER_CERT),
            self.issuer_dir().join(ISSUER_KEY),
        ]
    }

    /// The `weft install` flags that install this identity.
    pub(super) fn install_flags(&self) -> Vec<String> {
        let [anchors, _, cert, key] = self.files();
        [
            ("--identity-trust-anchors-file", anchors),
            ("--identity-issuer-certificate-file", cert),
            ("--identity-issuer-key-file", key),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    }
}

/// Step 4: `weft check --pre`. The cluster's side with kubectl; then the
/// mesh identity, made with `weft certs` (or kept from an earlier run),
/// checked with `weft check`. Returns the `weft` binary (built in
/// `profile`) and the identity.
pub(super) async fn check_pre(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    profile: Profile,
    dir: &Path,
) -> Result<(PathBuf, Identity)> {
    p.step("weft check --pre")?;
    let weft = p
        .ticking(
            "building the weft CLI",
            tokio::task::spawn_blocking(move || WEFT_CLI.path(profile)),
        )
        .await?
        .map_err(|e| Error::Demo(format!("building the weft CLI: {e}")))??;
    p.note("weft check has no --pre flag yet and does not look at a cluster: it checks certificates on disk. In its place: what the cluster tells kubectl, then weft check on the trust anchor and issuer weft install will use")?;
    let kubectl = cluster.kubectl();
    for args in PREFLIGHT {
        p.note(format!("$ {}", shell::line("kubectl", args)))?;
        let out = kubectl.run(args).await?;
        for line in out.stdout.lines() {
            p.note(format!("  {line}"))?;
        }
    }

    let identity = Identity::in_dir(dir);
    let anchor = identity.anchor_dir().display().to_string();
    let issuer = identity.issuer_dir().display().to_string();
    if identity.files().iter().all(|f| f.is_file()) {
        p.note(format!(
            "the mesh's trust anchor and issuer: kept from an earlier run in {}",
            identity.root.display()
        ))?;
    } else {
        // A partial set (an interrupted run) is made again whole.
        if identity.root.exists() {
            std::fs::remove_dir_all(&identity.root)
                .map_err(Error::io(format!("removing {}", identity.root.display())))?;
        }
        run_weft(p, &weft, &["certs", "anchor", "--out", &anchor]).await?;
        run_weft(
            p,
            &weft,
            &["certs", "issuer", "--anchor", &anchor, "--out", &issuer],
        )
        .await?;
    }
    run_weft(
        p,
        &weft,
        &["check", "--certs-dir", &anchor, "--certs-dir", &issuer],
    )
    .await?;
    p.done("the API server answers, this user may create weft's webhook, and the trust anchor and issuer pass weft check")?;
    Ok((weft, identity))
}

/// Step 5: `weft install | kubectl apply -f -` with the identity of step 4.
pub(super) async fn install(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    identity: &Identity,
) -> Result<()> {
    let flags = identity.install_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let args = install::install_args(&flags);
    p.step(format!(
        "{} | kubectl apply -f -",
        shell::line("weft", &args)
    ))?;
    p.note(format!(
        "--registry {}: the images were imported into the node's containerd under that name; a real cluster keeps the default",
        images::REGISTRY
    ))?;
    p.note("--identity-*: the trust anchor and issuer of step 4, so a second run keeps the mesh's identity")?;
    p.ticking(
        "rendering and applying weft's manifests",
        install::apply(cluster, &flags),
    )
    .await??;
    p.done(format!(
        "applied: namespace {}, the injector, weft-control and the webhook configuration",
        install::NAMESPACE
    ))
}

/// Step 6: `weft check`. What a check of the cluster would wait on (weft's
/// Deployments Available, the API server calling the webhook), then `weft
/// check` on the trust anchors and issuer the cluster now holds, exported
/// with kubectl. Returns the webhook's name.
pub(super) async fn check(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    weft: &Path,
    identity: &Identity,
) -> Result<String> {
    p.step("weft check")?;
    p.note("weft check does not look at a cluster yet. In its place: the conditions the demo waits on, then weft check on the trust anchors and issuer the cluster now holds")?;
    let deployments = install::DEPLOYMENTS
        .iter()
        .map(|d| format!("deployment/{d}"))
        .collect::<Vec<_>>()
        .join(" and ");
    p.until(
        &format!("{deployments} Available"),
        CONTROL_PLANE_READY,
        || async {
            install::wait_ready(cluster, Duration::from_secs(1))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await?;
    p.note(format!("{deployments} Available"))?;
    p.ticking(
        "waiting until the API server calls the webhook (a dry-run marker pod comes back injected)",
        webhook::wait_live(cluster),
    )
    .await??;
    p.note("the API server calls the webhook: a dry-run pod comes back with weft-proxy")?;

    let installed = identity.installed_dir();
    std::fs::create_dir_all(&installed)
        .map_err(Error::io(format!("creating {}", installed.display())))?;
    let anchors = installed.join("ca-bundle.crt");
    let issuer = installed.join(ISSUER_CERT);
    let exports = [
        (
            "configmap",
            weft_webhook_config::TRUST_ANCHORS_CONFIGMAP_NAME,
            r#"go-template={{index .data "ca-bundle.crt"}}"#,
            &anchors,
        ),
        (
            "secret",
            weft_webhook_config::ISSUER_SECRET_NAME,
            r#"go-template={{index .data "tls.crt" | base64decode}}"#,
            &issuer,
        ),
    ];
    let kubectl = cluster.kubectl();
    for (kind, name, template, file) in exports {
        let args = ["get", kind, "-n", install::NAMESPACE, name, "-o", template];
        p.note(format!(
            "$ {} > {}",
            shell::line("kubectl", &args),
            shell::word(&file.display().to_string())
        ))?;
        let out = kubectl.run(&args).await?;
        std::fs::write(file, &out.stdout)
            .map_err(Error::io(format!("writing {}", file.display())))?;
    }
    let ours = std::fs::read_to_string(identity.anchor_dir().join(ANCHOR_CERT))
        .map_err(Error::io("reading the trust anchor of step 4".to_string()))?;
    let theirs = std::fs::read_to_string(&anchors)
        .map_err(Error::io(format!("reading {}", anchors.display())))?;
    // The same certificates, whatever the line breaks.
    let pem = |text: &str| text.split_whitespace().collect::<String>();
    if pem(&ours) != pem(&theirs) {
        return Err(Error::Demo(format!(
            "the cluster's trust anchors ({}) are not the ones step 4 made ({})",
            anchors.display(),
            identity.anchor_dir().join(ANCHOR_CERT).display()
        )));
    }
    p.note("the cluster's trust anchors are step 4's ca.crt")?;
    let (anchors, issuer) = (anchors.display().to_string(), issuer.display().to_string());
    run_weft(
        p,
        weft,
        &[
            "check",
            "--trust-anchors-file",
            &anchors,
            "--issuer-certificate-file",
            &issuer,
        ],
    )
    .await?;
    p.done(format!(
        "weft runs in namespace {}; the API server calls the injector through Service {}",
        install::NAMESPACE,
        weft_webhook_config::INJECTOR_NAME
    ))?;
    Ok(weft_webhook_config::WEBHOOK_NAME.to_string())
}

/// Runs `weft ARGS` as printed, showing what it says (`weft certs` writes
/// its advice to stderr, `weft check` its report to stdout); fails when it
/// fails (`weft check` does when it finds an error).
async fn run_weft(p: &mut Progress<'_>, weft: &Path, args: &[&str]) -> Result<()> {
    p.note(format!("$ {}", shell::line("weft", args)))?;
    let out = weft_output(weft, args).await?;
    let said = out.stdout.lines().chain(out.stderr.lines());
    for line in said.filter(|l| !l.trim().is_empty()) {
        p.note(format!("  {line}"))?;
    }
    if out.success {
        Ok(())
    } else {
        Err(Error::Demo(format!("weft {} failed", args.join(" "))))
    }
}

/// What a `weft` run printed.
struct WeftOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

async fn weft_output(weft: &Path, args: &[&str]) -> Result<WeftOutput> {
    let out = tokio::process::Command::new(weft)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(Error::io(format!("running {}", weft.display())))?;
    Ok(WeftOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_flags_name_the_files_weft_certs_writes() {
        let identity = Identity::in_dir(Path::new("/c"));
        assert_eq!(
            identity.install_flags(),
            [
                "--identity-trust-anchors-file",
                "/c/identity/anchor/ca.crt",
                "--identity-issuer-certificate-file",
                "/c/identity/issuer/issuer.crt",
                "--identity-issuer-key-file",
                "/c/identity/issuer/issuer.key",
            ]
        );
    }
}
