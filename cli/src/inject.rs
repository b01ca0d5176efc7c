//! `weft inject`. Stub: being written.

/// Arguments of `weft inject`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("weft inject: not written yet")
}
