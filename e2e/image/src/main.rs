//! `weft-image`: builds weft's static binaries and writes its images as OCI
//! archives for `ctr images import`. The work is in the library; this only
//! parses flags and prints results.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_image::{bins, weft};

#[derive(Parser)]
#[command(
    version,
    about = "Builds weft's images as reproducible OCI archives, without Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds static weft-proxy, weft-injector and weft-control (musl,
    /// release) and the pause binary into a folder.
    BuildBins {
        /// Where the binaries go.
        #[arg(long)]
        out: PathBuf,
        /// The weft workspace to build (default: the one this tool was
        /// built from).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Build only the pause binary.
        #[arg(long)]
        pause_only: bool,
    },
    /// Writes one archive per image from a folder of binaries; prints
    /// `name digest compressed-bytes path` for each.
    Weft {
        /// The folder `build-bins` filled.
        #[arg(long)]
        bins: PathBuf,
        /// Where the archives go.
        #[arg(long)]
        out: PathBuf,
        /// The images' name prefix.
        #[arg(long, default_value = weft::DEFAULT_REGISTRY)]
        registry: String,
        /// The tag of weft's own images (pause has its own).
        #[arg(long, default_value = weft::WEFT_TAG)]
        tag: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Each error's message already ends with its cause.
            eprintln!("weft-image: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> weft_image::Result<()> {
    match cli.command {
        Command::BuildBins {
            out,
            workspace,
            pause_only,
        } => {
            let built = if pause_only {
                vec![bins::build_pause(&out)?]
            } else {
                let workspace = workspace.unwrap_or_else(bins::workspace_root);
                bins::build_all(&workspace, &out)?
            };
            for path in built {
                println!("{}", path.display());
            }
        }
        Command::Weft {
            bins,
            out,
            registry,
            tag,
        } => {
            for image in weft::write_weft_images(&bins, &out, &registry, &tag)? {
                println!(
                    "{} {} {} {}",
                    image.name,
                    image.manifest_digest,
                    image.compressed_size,
                    image.archive.display()
                );
                if image.reused {
                    eprintln!("{}: inputs unchanged, archive kept", image.name);
                }
            }
        }
    }
    Ok(())
}
