//! Reads an image archive back with nothing from the crate under test but
//! its output, and checks that it is a valid OCI layout: every blob's name
//! is its sha256, every descriptor's size and digest match the blob, each
//! `diff_id` is the sha256 of the uncompressed layer, and each layer's tar
//! lists folders before what they hold.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// One tar entry as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub body: Vec<u8>,
}

/// A parsed, checked archive.
pub struct Image {
    pub entries: Vec<TarEntry>,
    pub index: Value,
    pub manifest: Value,
    pub manifest_digest: String,
    pub config: Value,
    /// Each layer's entries, lowest layer first.
    pub layers: Vec<Vec<TarEntry>>,
    /// Each layer blob's size.
    pub layer_sizes: Vec<u64>,
}

impl Image {
    /// The entry at `path` (without a leading `/`) in any layer.
    pub fn find(&self, path: &str) -> Option<&TarEntry> {
        let dir = format!("{path}/");
        self.layers
            .iter()
            .flatten()
            .find(|e| e.path == path || e.path == dir)
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let mut text = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        text.push_str(&format!("{b:02x}"));
    }
    text
}

/// Every entry of the tar `bytes`, in order.
pub fn tar_entries(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).expect("tar body");
        assert_eq!(header.username_bytes(), Some(&b""[..]), "no user name");
        assert_eq!(header.groupname_bytes(), Some(&b""[..]), "no group name");
        out.push(TarEntry {
            path: entry.path().expect("path").to_string_lossy().into_owned(),
            kind: char::from(header.entry_type().as_byte()),
            mode: header.mode().expect("mode"),
            uid: header.uid().expect("uid"),
            gid: header.gid().expect("gid"),
            mtime: header.mtime().expect("mtime"),
            link: entry
                .link_name()
                .expect("link")
                .map(|l| l.to_string_lossy().into_owned()),
            body,
        });
    }
    out
}

fn blob<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    descriptor: &Value,
    media_type: &str,
) -> &'a [u8] {
    assert_eq!(descriptor["mediaType"], media_type, "{descriptor}");
    let digest = descriptor["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("no blob {digest}"));
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "size of {digest}"
    );
    bytes
}

/// Parses and checks the archive at `path`.
pub fn read_image(path: &Path) -> Image {
    let bytes = std::fs::read(path).expect("read archive");
    let entries = tar_entries(&bytes);
    let mut files = BTreeMap::new();
    for e in &entries {
        assert_eq!(e.mtime, 0, "{}", e.path);
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path);
        if e.kind == '0' {
            files.insert(e.path.clone(), e.body.clone());
        }
    }
    assert_eq!(
        std::str::from_utf8(&files["oci-layout"]).expect("utf-8"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    for (name, body) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256(body), format!("sha256:{hex}"), "blob {name}");
        }
    }
    check_parents_first(&entries);

    let index: Value = serde_json::from_slice(&files["index.json"]).expect("index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    let manifest_bytes = blob(
        &files,
        &manifests[0],
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest: Value = serde_json::from_slice(manifest_bytes).expect("manifest");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config: Value = serde_json::from_slice(blob(
        &files,
        &manifest["config"],
        "application/vnd.oci.image.config.v1+json",
    ))
    .expect("config");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert!(config.get("created").is_none(), "no creation time");
    assert_eq!(config["rootfs"]["type"], "layers");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    let descriptors = manifest["layers"].as_array().expect("layers");
    assert_eq!(diff_ids.len(), descriptors.len());

    let mut layers = Vec::new();
    let mut layer_sizes = Vec::new();
    for (descriptor, diff_id) in descriptors.iter().zip(diff_ids) {
        let gz = blob(
            &files,
            descriptor,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        layer_sizes.push(gz.len() as u64);
        // The gzip header: no name (FLG 0) and mtime 0.
        assert_eq!(
            &gz[..4],
            b"\x1f\x8b\x08\x00",
            "gzip magic, deflate, no flags"
        );
        assert_eq!(&gz[4..8], b"\0\0\0\0", "gzip mtime 0");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .expect("gunzip");
        assert_eq!(diff_id.as_str(), Some(sha256(&tar).as_str()), "diff_id");
        let layer = tar_entries(&tar);
        for e in &layer {
            assert_eq!(e.mtime, 0, "{}", e.path);
            assert!(!e.path.starts_with('/'), "{}", e.path);
        }
        check_parents_first(&layer);
        layers.push(layer);
    }
    Image {
        entries,
        manifest_digest: sha256(manifest_bytes),
        index,
        manifest,
        config,
        layers,
        layer_sizes,
    }
}

/// Every entry's parent folders come earlier, as folders, and the entries
/// are sorted by path.
pub fn check_parents_first(entries: &[TarEntry]) {
    let mut dirs_seen = std::collections::BTreeSet::new();
    let mut previous = String::new();
    for e in entries {
        let path = e.path.trim_end_matches('/');
        assert!(
            previous.as_str() < path,
            "{previous:?} then {path:?}: not sorted"
        );
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.and_then(Path::to_str).filter(|d| !d.is_empty()) {
            assert!(
                dirs_seen.contains(dir),
                "{path:?} comes before its folder {dir:?}"
            );
            parent = Path::new(dir).parent();
        }
        if e.kind == '5' {
            assert!(
                e.path.ends_with('/'),
                "a folder's name ends with /: {}",
                e.path
            );
            dirs_seen.insert(path.to_owned());
        }
        previous = path.to_owned();
    }
}
