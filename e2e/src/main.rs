//! `weft-e2e`: the local cluster for a person. `up` starts it and its node
//! in the background and prints how to point kubectl at it; `demo` (`make
//! demo`) also installs weft in it and shows it at work on a sample app;
//! `down` stops it all and puts the host back; `status` says what runs;
//! `bins` and `images` only build.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weft_e2e::demo::{self, DemoOptions};
use weft_e2e::state::{self, ClusterState};
use weft_e2e::{Binaries, Profile};

#[derive(Debug, Parser)]
#[command(
    name = "weft-e2e",
    about = "weft's local Kubernetes control plane",
    version
)]
struct Cli {
    /// Folder of the cluster (kubeconfig, certificates, logs, etcd data).
    #[arg(long, env = "WEFT_E2E_CLUSTER_DIR", default_value_os_t = default_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the cluster in the background (builds the binaries first).
    Up,
    /// Start the cluster and its node (or reuse them), install weft in it,
    /// deploy a sample app, annotate and restart it, and show what was
    /// injected into one pod and why, and that its traffic is mutual TLS.
    /// The cluster keeps running until `down`.
    Demo {
        /// The manifest to deploy.
        #[arg(long, default_value_os_t = DemoOptions::new(&default_dir()).manifest)]
        manifest: PathBuf,
        /// The manifest's namespace, which the demo annotates and restarts.
        #[arg(long, default_value = "emojivoto")]
        namespace: String,
        /// The Deployment whose new pod is reported.
        #[arg(long, default_value = "web")]
        deployment: String,
    },
    /// Stop the cluster (and a demo's injector) and remove its folder.
    Down,
    /// Say whether the cluster is running.
    Status,
    /// Build etcd, kube-apiserver, kube-controller-manager and kubectl.
    Bins,
    /// Build the node's images (weft's, pause, CoreDNS, busybox) as OCI
    /// archives in e2e/.images.
    Images,
}

fn default_dir() -> PathBuf {
    weft_e2e::bins::crate_dir().join(".cluster")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up => {
            let started = tokio::time::Instant::now();
            let state = state::up(&cli.dir).await.context("starting the cluster")?;
            let bin_dir = Binaries::default_dir();
            println!(
                "weft-e2e: cluster up in {:.1}s at {} (logs in {})",
                started.elapsed().as_secs_f64(),
                state.server,
                state.dir.display()
            );
            println!(
                "Node {} is Ready; weft's images are imported (weft install --registry {}).",
                weft_e2e::node::config::NODE_NAME,
                weft_e2e::images::REGISTRY
            );
            println!(
                "Point kubectl at it (kubectl from the same release is in {}):",
                bin_dir.display()
            );
            println!("export KUBECONFIG={}", state.kubeconfig.display());
            println!("Stop it with: make cluster-down");
        }
        Command::Demo {
            manifest,
            namespace,
            deployment,
        } => {
            let options = DemoOptions {
                dir: cli.dir,
                manifest,
                namespace,
                deployment,
                profile: Profile::Debug,
            };
            let started = tokio::time::Instant::now();
            demo::run(&options, &mut std::io::stdout())
                .await
                .context("weft demo")?;
            println!("weft demo: done in {:.1}s", started.elapsed().as_secs_f64());
        }
        Command::Down => {
            if state::down(&cli.dir).context("stopping the cluster")? {
                println!(
                    "weft-e2e: cluster stopped and {} removed",
                    cli.dir.display()
                );
            } else {
                println!("weft-e2e: no cluster in {}", cli.dir.display());
            }
        }
        Command::Status => match ClusterState::load(&cli.dir)? {
            Some(state) => {
                let running = state.running();
                for c in &state.components {
                    let up = running.iter().any(|r| r.pid == c.pid);
                    println!(
                        "{:<24} pid {:<8} {}",
                        c.name,
                        c.pid,
                        if up { "running" } else { "stopped" }
                    );
                }
                if let Some(injector) = &state.injector {
                    println!(
                        "{:<24} pid {:<8} {} ({})",
                        "weft-injector",
                        injector.pid,
                        if injector.running() {
                            "running"
                        } else {
                            "stopped"
                        },
                        injector.url
                    );
                }
                if running.len() != state.components.len() {
                    anyhow::bail!("the cluster in {} is not fully running", cli.dir.display());
                }
                if state.node {
                    let kubectl = weft_e2e::Kubectl::new(
                        &Binaries::in_dir(&Binaries::default_dir()).kubectl,
                        &state.kubeconfig,
                    );
                    let nodes = kubectl
                        .run(&["get", "nodes", "-o", "wide"])
                        .await
                        .context("kubectl get nodes")?;
                    print!("\n{}", nodes.stdout);
                }
                println!("export KUBECONFIG={}", state.kubeconfig.display());
            }
            None => anyhow::bail!("no cluster in {}", cli.dir.display()),
        },
        Command::Images => {
            let started = tokio::time::Instant::now();
            for image in weft_e2e::images::build().await? {
                println!(
                    "{:<42} {} {:>9} bytes compressed{}",
                    image.name,
                    image.manifest_digest,
                    image.compressed_size,
                    if image.reused { " (unchanged)" } else { "" }
                );
            }
            println!(
                "weft-e2e: images ready in {} ({:.1}s)",
                weft_e2e::images::images_dir().display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Bins => {
            let bins = tokio::task::spawn_blocking(Binaries::ensure).await??;
            println!(
                "{}",
                bins.kubectl.parent().unwrap_or(&bins.kubectl).display()
            );
        }
    }
    Ok(())
}
