//! `weft-proxy`: the one binary of the proxy image. A thin dispatcher; each
//! subcommand lives in the library.
//!
//! Exit codes are a contract (docs/architecture.md, "Exit codes").

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "weft-proxy", version, about = "weft's sidecar proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the iptables redirect in this network namespace (the weft-init container).
    Init(weft_proxy::init::InitArgs),
    /// Wait until the local proxy answers /ready (the classic sidecar's postStart hook).
    Await(weft_proxy::await_ready::AwaitArgs),
    /// Run the proxy; configured by the WEFT_PROXY_* environment (the weft-proxy container).
    Run,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Init(args) => match weft_proxy::init::run(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail("init", &e, e.exit_code()),
        },
        Command::Await(args) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail("await", &e, 1),
            };
            match runtime.block_on(weft_proxy::await_ready::wait_ready(&args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail("await", &e, e.exit_code()),
            }
        }
        Command::Run => match run_proxy() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail("run", &e, 1),
        },
    }
}

fn fail(subcommand: &str, error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("weft-proxy {subcommand}: error: {error}");
    ExitCode::from(code)
}

fn run_proxy() -> anyhow::Result<()> {
    use weft_proxy::run;
    let config = run::Config::from_env(&run::ProcessEnv)?;
    run::init_tracing(&config.log)?;
    // One thread by default, as a sidecar's CPU budget is usually a
    // fraction of a core: a single-threaded runtime hands work between a
    // connection's tasks without waking other threads, which costs less CPU
    // per request than a work-stealing one. WEFT_PROXY_CORES asks for more.
    let runtime = if config.cores <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.cores)
            .enable_all()
            .build()?
    };
    runtime.block_on(run::run(config))?;
    Ok(())
}
