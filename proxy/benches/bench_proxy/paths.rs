//! What the benchmark measures: the paths from the load generator to the
//! server (direct, one weft proxy, two, HAProxy, Envoy, and any `--variant`
//! builds of weft), and the copy of the `weft-proxy` binary they run.

use std::path::PathBuf;

use super::peers::TempDir;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Another `weft-proxy` build (or the same one with other settings) run as
/// one hop beside the others, for before/after comparisons in one run.
#[derive(Clone, Debug)]
pub struct Variant {
    pub label: String,
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// Parses `LABEL=BIN` or `LABEL=BIN@K=V,K=V` (extra environment); an
    /// empty BIN means the benchmark's own `weft-proxy`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (label, rest) = text
            .split_once('=')
            .ok_or("--variant LABEL=BIN[@K=V,...]")?;
        let (bin, env) = rest.split_once('@').unwrap_or((rest, ""));
        let env = env
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| format!("variant env {kv:?} is not K=V"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            label: label.to_owned(),
            bin: PathBuf::from(bin),
            env,
        })
    }
}

/// A path from the load generator to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    Direct,
    Weft1,
    Weft2,
    Haproxy,
    Envoy,
    /// One hop through the variant with this index.
    Variant(usize),
}

impl Path {
    pub fn name(self, variants: &[Variant]) -> String {
        match self {
            Self::Direct => "direct".to_owned(),
            Self::Weft1 => "weft x1".to_owned(),
            Self::Weft2 => "weft x2".to_owned(),
            Self::Haproxy => "haproxy".to_owned(),
            Self::Envoy => "envoy".to_owned(),
            Self::Variant(i) => variants
                .get(i)
                .map_or_else(|| format!("variant {i}"), |v| v.label.clone()),
        }
    }

    /// Proxy processes on the path (the CPU and memory figures divide by it).
    pub fn hops(self) -> usize {
        match self {
            Self::Direct => 0,
            Self::Weft2 => 2,
            Self::Weft1 | Self::Haproxy | Self::Envoy | Self::Variant(_) => 1,
        }
    }
}

/// A copy of the `weft-proxy` this benchmark was built with, removed on
/// drop: a rebuild while the benchmark runs cannot swap the binary between
/// rounds.
pub struct Snapshot {
    dir: TempDir,
}

impl Snapshot {
    /// Copies the binary.
    pub fn take() -> Result<Self, Error> {
        let dir = TempDir::new("weft")?;
        std::fs::copy(
            env!("CARGO_BIN_EXE_weft-proxy"),
            dir.path().join("weft-proxy"),
        )?;
        Ok(Self { dir })
    }

    /// Where the copy is.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("weft-proxy")
    }
}
