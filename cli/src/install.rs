//! `weft install`. Stub: being written.

/// Arguments of `weft install`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("weft install: not written yet")
}
