//! `weft-proxy`: init, run, await. Stub: being written (issue 4).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("weft-proxy: not written yet")
}
