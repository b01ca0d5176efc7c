//! An image as an OCI image layout in one tar (`oci-layout`, `index.json`,
//! `blobs/sha256/...`): what `ctr -n k8s.io images import FILE` reads.
//!
//! The index's one manifest descriptor carries `io.containerd.image.name`
//! (the full name, which containerd files the image under) and
//! `org.opencontainers.image.ref.name` (the tag, for other OCI tools). All
//! JSON is serialised from structs, so its key order is fixed; the config
//! has no `created` time; the outer tar is written like a layer (sorted,
//! mtime 0, root-owned). The same spec therefore always gives the same
//! bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Result, io};
use crate::layer::{Entry, Layer, compress};
use crate::spec::ImageSpec;

/// `index.json`'s media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The manifest's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Every layer's media type.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation containerd names an imported image by.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation for the tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The contents of the `oci-layout` file.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// What one layer of a written image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// The gzipped blob's digest.
    pub digest: Digest,
    /// The uncompressed tar's digest.
    pub diff_id: Digest,
    /// The gzipped blob's size in bytes.
    pub size: u64,
    /// The uncompressed tar's size in bytes.
    pub uncompressed_size: u64,
}

/// An image rendered in memory: every blob and the index that names them.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    /// The image's full name.
    pub name: String,
    /// The manifest's digest: the image's identity in containerd.
    pub manifest_digest: Digest,
    /// The config's digest (containerd's "image ID").
    pub config_digest: Digest,
    /// The layers, lowest first.
    pub layers: Vec<LayerSummary>,
    /// `index.json`.
    pub index: Vec<u8>,
    /// Every blob (config, manifest, layers), by digest.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

impl RenderedImage {
    /// The sum of the layer blobs' sizes: what a node downloads.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// A written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The image's full name.
    pub name: String,
    /// The archive's path.
    pub archive: PathBuf,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The layers, lowest first.
    pub layers: Vec<LayerSummary>,
    /// The sum of the layer blobs' sizes.
    pub compressed_size: u64,
    /// True when the archive was already there, from the same inputs, and
    /// was left alone (see [`crate::stamp`]).
    pub reused: bool,
}

/// The image config of `spec`: every run setting and each layer's
/// uncompressed digest. It changes exactly when the image's contents do,
/// and costs no compression.
pub fn config_json(spec: &ImageSpec) -> Result<Vec<u8>> {
    let diff_ids = spec
        .layers
        .iter()
        .map(|l| l.tar().map(|t| Digest::of(&t)))
        .collect::<Result<Vec<_>>>()?;
    config_for(spec, &diff_ids)
}

fn config_for(spec: &ImageSpec, diff_ids: &[Digest]) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&Config {
        architecture: "amd64",
        os: "linux",
        config: RunConfig {
            user: &spec.user,
            env: &spec.env,
            entrypoint: &spec.entrypoint,
            cmd: &spec.cmd,
            working_dir: &spec.workdir,
            labels: &spec.labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: diff_ids.iter().collect(),
        },
    })?)
}

/// Renders `spec`: its layers, config, manifest and index.
pub fn render(spec: &ImageSpec) -> Result<RenderedImage> {
    let tag = spec.tag()?;
    let mut blobs = BTreeMap::new();
    let mut layers = Vec::with_capacity(spec.layers.len());
    for layer in &spec.layers {
        let r = compress(&layer.tar()?)?;
        layers.push(LayerSummary {
            digest: r.digest.clone(),
            diff_id: r.diff_id.clone(),
            size: r.size(),
            uncompressed_size: r.uncompressed_size,
        });
        blobs.insert(r.digest, r.blob);
    }
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = config_for(spec, &diff_ids)?;
    let config_digest = Digest::of(&config);

    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: Descriptor::new(CONFIG_MEDIA_TYPE, &config_digest, config.len()),
        layers: layers
            .iter()
            .map(|l| Descriptor {
                size: l.size,
                ..Descriptor::new(LAYER_MEDIA_TYPE, &l.digest, 0)
            })
            .collect(),
    })?;
    let manifest_digest = Digest::of(&manifest);

    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: INDEX_MEDIA_TYPE,
        manifests: vec![Descriptor {
            annotations: BTreeMap::from([
                (CONTAINERD_NAME_ANNOTATION, spec.name.as_str()),
                (REF_NAME_ANNOTATION, tag),
            ]),
            platform: Some(Platform {
                architecture: "amd64",
                os: "linux",
            }),
            ..Descriptor::new(MANIFEST_MEDIA_TYPE, &manifest_digest, manifest.len())
        }],
    })?;

    blobs.insert(config_digest.clone(), config);
    blobs.insert(manifest_digest.clone(), manifest);
    Ok(RenderedImage {
        name: spec.name.clone(),
        manifest_digest,
        config_digest,
        layers,
        index,
        blobs,
    })
}

/// The archive's bytes: the OCI layout of `image` as one tar.
pub fn archive_tar(image: RenderedImage) -> Result<Vec<u8>> {
    let mut tar = Layer::new();
    tar.add(Entry::file("oci-layout", 0o644, OCI_LAYOUT))?;
    tar.add(Entry::file("index.json", 0o644, image.index))?;
    for (digest, blob) in image.blobs {
        tar.add(Entry::file(
            &format!("blobs/sha256/{}", digest.hex()),
            0o644,
            blob,
        ))?;
    }
    tar.tar()
}

/// Renders `spec` and writes its archive to `path`, replacing any file
/// there only once the new one is complete.
pub fn write_archive(spec: &ImageSpec, path: &Path) -> Result<WrittenImage> {
    let image = render(spec)?;
    let written = WrittenImage {
        name: image.name.clone(),
        archive: path.to_owned(),
        manifest_digest: image.manifest_digest.clone(),
        compressed_size: image.compressed_size(),
        layers: image.layers.clone(),
        reused: false,
    };
    let bytes = archive_tar(image)?;
    write_atomically(path, &bytes)?;
    Ok(written)
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader
/// (or an interrupted run) never sees half an archive.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(io(format!("writing {}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(io(format!(
        "renaming {} to {}",
        partial.display(),
        path.display()
    )))
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'static str,
    os: &'static str,
    config: RunConfig<'a>,
    rootfs: RootFs<'a>,
}

// Docker's field names, which the OCI image spec kept.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    working_dir: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a Digest>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'static str,
    digest: &'a Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

impl<'a> Descriptor<'a> {
    fn new(media_type: &'static str, digest: &'a Digest, size: usize) -> Self {
        Self {
            media_type,
            digest,
            size: size as u64,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

#[derive(Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
}
