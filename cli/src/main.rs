//! `weft`: the command an operator runs.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod certs;
mod check;
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
    // Boxed: its many flags make it far larger than the other variants.
    Install(Box<install::Args>),
    /// Inject the weft proxy into Kubernetes manifests (files, folders or `-`).
    Inject(inject::Args),
    /// Make the mesh's trust anchor, issuer and trust bundle.
    Certs(certs::Args),
    /// Check weft's certificates (expiry, chain to the trust anchors).
    Check(check::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install(args) => install::run(*args),
        Command::Inject(args) => inject::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Check(args) => check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
