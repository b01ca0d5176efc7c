//! `weft`: the command an operator runs.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod inject;
mod install;

use clap::{Parser, Subcommand};

/// weft: a small, fast service mesh for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print weft's control plane as YAML, for `| kubectl apply -f -`.
    Install(install::Args),
    /// Inject the weft proxy into Kubernetes manifests (files, folders or `-`).
    Inject(inject::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install(args) => install::run(args),
        Command::Inject(args) => inject::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
