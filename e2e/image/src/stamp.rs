//! Skipping an archive whose inputs have not changed.
//!
//! Gzip at level 9 is most of the time an image takes, and the uncompressed
//! layers are cheap to recompute. So a stamp beside each archive
//! (`weft-proxy.tar.stamp`) records a key: the digest of the name, this
//! crate's version and format number, the gzip level and the image config,
//! which holds every run setting and each layer's uncompressed digest. When
//! the key matches and the archive is there, the stamp's recorded result is
//! returned without writing anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Result, io};
use crate::layer::GZIP_LEVEL;
use crate::layout::{self, LayerSummary, WrittenImage};
use crate::spec::ImageSpec;

/// Writes `spec`'s archive at `path` unless its stamp shows the same
/// inputs; the returned image's `reused` says which happened.
pub fn write_archive_if_changed(spec: &ImageSpec, path: &Path) -> Result<WrittenImage> {
    let key = key(spec)?;
    let stamp_path = stamp_path(path);
    if path.is_file()
        && let Some(stamp) = read(&stamp_path)
        && stamp.key == key
        && stamp.name == spec.name
        && let Some(written) = stamp.into_written(path)
    {
        return Ok(written);
    }
    // A stale stamp must not outlive an interrupted write below.
    let _ = std::fs::remove_file(&stamp_path);
    let written = layout::write_archive(spec, path)?;
    let stamp = Stamp::new(key, &written);
    let json = serde_json::to_vec_pretty(&stamp)?;
    std::fs::write(&stamp_path, json).map_err(io(format!("writing {}", stamp_path.display())))?;
    Ok(written)
}

/// The stamp file of the archive at `archive`.
pub fn stamp_path(archive: &Path) -> PathBuf {
    let mut p = archive.as_os_str().to_owned();
    p.push(".stamp");
    PathBuf::from(p)
}

/// Bumped whenever this crate changes what it writes for the same config
/// (the index, the manifest, the outer tar): the version alone would not
/// change between two builds of one release.
const FORMAT: u32 = 1;

fn key(spec: &ImageSpec) -> Result<String> {
    let config = layout::config_json(spec)?;
    let mut bytes = format!(
        "{}\n{}\n{FORMAT}\n{GZIP_LEVEL}\n",
        spec.name,
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    bytes.extend_from_slice(&config);
    Ok(Digest::of(&bytes).to_string())
}

fn read(path: &Path) -> Option<Stamp> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Serialize, Deserialize)]
struct Stamp {
    key: String,
    name: String,
    manifest_digest: String,
    layers: Vec<StampLayer>,
}

#[derive(Serialize, Deserialize)]
struct StampLayer {
    digest: String,
    diff_id: String,
    size: u64,
    uncompressed_size: u64,
}

impl Stamp {
    fn new(key: String, w: &WrittenImage) -> Self {
        Self {
            key,
            name: w.name.clone(),
            manifest_digest: w.manifest_digest.to_string(),
            layers: w
                .layers
                .iter()
                .map(|l| StampLayer {
                    digest: l.digest.to_string(),
                    diff_id: l.diff_id.to_string(),
                    size: l.size,
                    uncompressed_size: l.uncompressed_size,
                })
                .collect(),
        }
    }

    /// The recorded result, or `None` when a digest in the stamp is
    /// malformed (a hand-edited or truncated stamp means: rebuild).
    fn into_written(self, archive: &Path) -> Option<WrittenImage> {
        let layers = self
            .layers
            .into_iter()
            .map(|l| {
                Some(LayerSummary {
                    digest: Digest::parse(&l.digest)?,
                    diff_id: Digest::parse(&l.diff_id)?,
                    size: l.size,
                    uncompressed_size: l.uncompressed_size,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(WrittenImage {
            name: self.name,
            archive: archive.to_owned(),
            manifest_digest: Digest::parse(&self.manifest_digest)?,
            compressed_size: layers.iter().map(|l| l.size).sum(),
            layers,
            reused: true,
        })
    }
}
