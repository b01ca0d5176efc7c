//! What an image is: its name, its layers and how its process starts.

use std::collections::BTreeMap;

use crate::error::{ImageError, Result};
use crate::layer::Layer;

/// An image to write, independent of how it is stored.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// The full reference containerd files it under:
    /// `localhost/weft/weft-proxy:v0.1.0`.
    pub name: String,
    /// The layers, lowest first.
    pub layers: Vec<Layer>,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`: the entrypoint's default arguments.
    pub cmd: Vec<String>,
    /// `config.Env`, as `NAME=value`, in order.
    pub env: Vec<String>,
    /// `config.User`: `uid:gid`, or empty for root.
    pub user: String,
    /// `config.WorkingDir`, or empty for `/`.
    pub workdir: String,
    /// `config.Labels`; a map so their order never depends on the caller.
    pub labels: BTreeMap<String, String>,
}

impl ImageSpec {
    /// The tag: what follows the last `:` after the last `/`
    /// (`v0.1.0` in `localhost:5000/weft/weft-proxy:v0.1.0`).
    pub fn tag(&self) -> Result<&str> {
        split_name(&self.name).map(|(_, tag)| tag)
    }

    /// The name without its tag (`localhost/weft/weft-proxy`).
    pub fn repository(&self) -> Result<&str> {
        split_name(&self.name).map(|(repo, _)| repo)
    }
}

fn split_name(name: &str) -> Result<(&str, &str)> {
    let bad = |reason| ImageError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.contains('@') {
        return Err(bad("a digest reference cannot be written; give a tag"));
    }
    let last = name.rfind('/').map_or(0, |i| i + 1);
    let colon = name[last..]
        .rfind(':')
        .ok_or_else(|| bad("it has no `:tag`"))?;
    let (repo, tag) = (&name[..last + colon], &name[last + colon + 1..]);
    if repo.is_empty() || repo.ends_with('/') {
        return Err(bad("the repository is empty"));
    }
    // The OCI distribution spec's tag grammar: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
    let first_ok = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(bad("the tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"));
    }
    if repo
        .chars()
        .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
    {
        return Err(bad("a repository is lowercase, without spaces"));
    }
    Ok((repo, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ImageSpec {
        ImageSpec {
            name: name.into(),
            ..ImageSpec::default()
        }
    }

    #[test]
    fn the_tag_is_after_the_last_colon_of_the_last_component() {
        let s = spec("localhost:5000/weft/weft-proxy:v0.1.0");
        assert_eq!(s.tag().expect("tag"), "v0.1.0");
        assert_eq!(
            s.repository().expect("repo"),
            "localhost:5000/weft/weft-proxy"
        );
        assert_eq!(
            spec("localhost/weft/pause:3.10-weft").tag().expect("tag"),
            "3.10-weft"
        );
    }

    #[test]
    fn names_without_a_valid_tag_are_refused() {
        for name in [
            "localhost:5000/weft/weft-proxy",
            "weft-proxy:",
            ":v1",
            "weft/Proxy:v1",
            "weft-proxy:-v1",
            "weft-proxy@sha256:abc",
        ] {
            assert!(spec(name).tag().is_err(), "{name}");
        }
    }
}
