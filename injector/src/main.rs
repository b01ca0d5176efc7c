//! `weft-injector`: the mutating admission webhook server.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("weft-injector: server not written yet")
}
