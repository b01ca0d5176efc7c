//! One image layer: files, folders and symlinks, rendered to a tar that is a
//! pure function of the entries, then gzipped.
//!
//! Nothing of the machine that renders a layer leaks into it: entries are
//! written sorted by path, each folder before what it holds (a folder no
//! entry names is written as `0755 0:0`), every mtime is 0, owners are the
//! numbers the entry gives and no user or group names are written. A host
//! file contributes only its bytes, read through any symlinks; its mode and
//! owner come from the entry.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::digest::Digest;
use crate::error::{ImageError, Result, io};

/// The gzip level of every layer. Fixed, because the compressed bytes (and
/// so the manifest digest) change with it; 9 because a layer is written once
/// and pulled many times, and it keeps the proxy image inside its budget.
pub const GZIP_LEVEL: u32 = 9;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The file at this host path, read when the layer is rendered.
    Host(PathBuf),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File(Contents),
    /// A folder.
    Dir,
    /// A symlink to this target, written as given (relative or absolute).
    Symlink(String),
}

/// One path in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    path: String,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Entry {
    /// A regular file at `path` holding `bytes`, owned by root.
    pub fn file(path: &str, mode: u32, bytes: impl Into<Vec<u8>>) -> Self {
        Self::new(path, Kind::File(Contents::Bytes(bytes.into())), mode)
    }

    /// A regular file at `path` with the bytes of the host file `host`.
    pub fn host_file(path: &str, mode: u32, host: impl Into<PathBuf>) -> Self {
        Self::new(path, Kind::File(Contents::Host(host.into())), mode)
    }

    /// A folder at `path`, owned by root.
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::new(path, Kind::Dir, mode)
    }

    /// A symlink at `path` pointing at `target`. Its mode is 0777, as Linux
    /// reports for every symlink.
    pub fn symlink(path: &str, target: impl Into<String>) -> Self {
        Self::new(path, Kind::Symlink(target.into()), 0o777)
    }

    /// The same entry owned by `uid:gid`.
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    fn new(path: &str, kind: Kind, mode: u32) -> Self {
        Self {
            path: path.to_owned(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// The path in the image, relative to `/` (`usr/bin/weft-proxy`) once
    /// added to a layer.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the entry is.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The permission bits, with setuid, setgid and sticky (`0o1777`).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The owner's uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's gid.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

/// A set of entries, keyed by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

/// A rendered layer: the gzipped tar and what an image says about it.
#[derive(Debug, Clone)]
pub struct RenderedLayer {
    /// The `tar+gzip` blob.
    pub blob: Vec<u8>,
    /// The blob's digest: the manifest's layer descriptor.
    pub digest: Digest,
    /// The digest of the uncompressed tar: the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// The uncompressed tar's size in bytes.
    pub uncompressed_size: u64,
}

impl RenderedLayer {
    /// The blob's size in bytes: what a pull downloads.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry`. Adding an entry equal to one already there does
    /// nothing, so callers may add a shared library once per binary that
    /// needs it; a different entry at the same path is an error.
    pub fn add(&mut self, mut entry: Entry) -> Result<&mut Self> {
        entry.path = normalise(&entry.path)?;
        if entry.mode > 0o7777 {
            return Err(bad(
                &entry.path,
                format!("mode {:o} has bits beyond 0o7777", entry.mode),
            ));
        }
        if let Kind::Symlink(target) = &entry.kind
            && (target.is_empty() || target.contains('\0'))
        {
            return Err(bad(&entry.path, "a symlink needs a target without NUL"));
        }
        match self.entries.get(&entry.path) {
            Some(old) if *old == entry => {}
            Some(_) => return Err(ImageError::DuplicateEntry(entry.path)),
            None => {
                self.entries.insert(entry.path.clone(), entry);
            }
        }
        Ok(self)
    }

    /// The entries as added, sorted by path (without implied folders).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entries as they go into the tar: sorted by path, with a `0755
    /// 0:0` folder for every parent no entry names.
    pub fn complete(&self) -> Result<Vec<Entry>> {
        let mut all = self.entries.clone();
        for path in self.entries.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(dir) = parent.and_then(Path::to_str).filter(|d| !d.is_empty()) {
                match all.get(dir) {
                    Some(e) if e.kind != Kind::Dir => {
                        return Err(bad(path, format!("its parent {dir:?} is not a folder")));
                    }
                    Some(_) => {}
                    None => {
                        all.insert(dir.to_owned(), Entry::dir(dir, 0o755));
                    }
                }
                parent = Path::new(dir).parent();
            }
        }
        // Byte order puts a folder before everything under it, because a
        // folder's path is a prefix of its children's.
        Ok(all.into_values().collect())
    }

    /// The layer as an uncompressed tar.
    pub fn tar(&self) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        for entry in self.complete()? {
            append(&mut tar, &entry)?;
        }
        tar.into_inner().map_err(io("finishing a layer tar"))
    }

    /// The layer as a gzipped tar, with both digests.
    pub fn render(&self) -> Result<RenderedLayer> {
        compress(&self.tar()?)
    }
}

/// A layer from its uncompressed tar: gzipped, with both digests.
pub fn compress(tar: &[u8]) -> Result<RenderedLayer> {
    let blob = gzip(tar)?;
    Ok(RenderedLayer {
        digest: Digest::of(&blob),
        diff_id: Digest::of(tar),
        uncompressed_size: tar.len() as u64,
        blob,
    })
}

/// `bytes` gzipped at [`GZIP_LEVEL`], with no file name and mtime 0 in the
/// gzip header, so the output depends on the bytes alone.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    gz.write_all(bytes).map_err(io("gzipping a layer"))?;
    gz.finish().map_err(io("gzipping a layer"))
}

fn append(tar: &mut tar::Builder<Vec<u8>>, entry: &Entry) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(entry.mode);
    header.set_uid(u64::from(entry.uid));
    header.set_gid(u64::from(entry.gid));
    header.set_mtime(0);
    let context = || format!("writing {} into a layer", entry.path);
    match &entry.kind {
        Kind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{}/", entry.path), std::io::empty())
                .map_err(io(context()))
        }
        Kind::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, &entry.path, target)
                .map_err(io(context()))
        }
        Kind::File(contents) => {
            let bytes = match contents {
                Contents::Bytes(b) => std::borrow::Cow::Borrowed(b.as_slice()),
                Contents::Host(host) => {
                    std::borrow::Cow::Owned(std::fs::read(host).map_err(io(format!(
                        "reading {} for {}",
                        host.display(),
                        entry.path
                    )))?)
                }
            };
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, &entry.path, bytes.as_ref())
                .map_err(io(context()))
        }
    }
}

/// `/usr//bin/x` and `usr/bin/x` both become `usr/bin/x`; `.`, `..` and the
/// root itself are refused, as they would let a layer write outside the
/// path it names.
fn normalise(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(bad(path, "`.` and `..` are not allowed"));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(bad(path, "the root is not an entry"));
    }
    if path.contains('\0') {
        return Err(bad(path, "a path cannot hold NUL"));
    }
    Ok(parts.join("/"))
}

fn bad(path: &str, reason: impl Into<String>) -> ImageError {
    ImageError::BadEntry {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(layer: &Layer) -> Vec<String> {
        let tar = layer.tar().expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                e.path().expect("path").to_string_lossy().into_owned()
            })
            .collect()
    }

    #[test]
    fn parents_come_first_and_the_order_is_the_paths_not_the_adds() {
        let mut layer = Layer::new();
        layer
            .add(Entry::file("/usr/bin/b", 0o755, "b"))
            .and_then(|l| l.add(Entry::symlink("/usr/sbin/a", "../bin/b")))
            .and_then(|l| l.add(Entry::dir("/tmp", 0o1777)))
            .and_then(|l| l.add(Entry::file("usr/bin/a", 0o644, "a")))
            .expect("add");
        assert_eq!(
            names(&layer),
            [
                "tmp/",
                "usr/",
                "usr/bin/",
                "usr/bin/a",
                "usr/bin/b",
                "usr/sbin/",
                "usr/sbin/a"
            ]
        );
    }

    #[test]
    fn the_same_entry_twice_is_one_entry_and_a_different_one_is_an_error() {
        let mut layer = Layer::new();
        layer.add(Entry::file("/a", 0o644, "x")).expect("first");
        layer.add(Entry::file("a", 0o644, "x")).expect("same again");
        assert_eq!(layer.entries().count(), 1);
        let err = layer
            .add(Entry::file("/a", 0o600, "x"))
            .expect_err("different mode");
        assert!(matches!(err, ImageError::DuplicateEntry(p) if p == "a"));
    }

    #[test]
    fn paths_that_escape_or_name_the_root_are_refused() {
        for path in ["/", "", "/usr/../etc/passwd", "./a", "a/./b"] {
            let err = Layer::new()
                .add(Entry::file(path, 0o644, ""))
                .expect_err(path);
            assert!(matches!(err, ImageError::BadEntry { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn an_entry_under_a_file_is_refused_when_rendering() {
        let mut layer = Layer::new();
        layer
            .add(Entry::file("/etc", 0o644, ""))
            .and_then(|l| l.add(Entry::file("/etc/passwd", 0o644, "")))
            .expect("add");
        let err = layer.tar().expect_err("etc is a file");
        assert!(err.to_string().contains("not a folder"), "{err}");
    }

    #[test]
    fn headers_carry_the_entry_and_nothing_of_the_host() {
        let host = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(host.path(), b"host bytes").expect("write");
        let mut layer = Layer::new();
        layer
            .add(Entry::host_file("/bin/h", 0o4755, host.path()).owner(7, 8))
            .and_then(|l| l.add(Entry::symlink("/bin/l", "h")))
            .expect("add");
        let tar = layer.tar().expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let h = e.header().clone();
            assert_eq!(h.mtime().expect("mtime"), 0);
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).expect("read");
            seen.push((
                e.path().expect("path").to_string_lossy().into_owned(),
                h.mode().expect("mode"),
                h.uid().expect("uid"),
                h.gid().expect("gid"),
                body,
                h.link_name()
                    .expect("link")
                    .map(|l| l.to_string_lossy().into_owned()),
            ));
        }
        assert_eq!(
            seen,
            [
                ("bin/".into(), 0o755, 0, 0, vec![], None),
                ("bin/h".into(), 0o4755, 7, 8, b"host bytes".to_vec(), None),
                ("bin/l".into(), 0o777, 0, 0, vec![], Some("h".into())),
            ]
        );
    }

    #[test]
    fn rendering_is_repeatable_and_the_diff_id_is_the_uncompressed_tar() {
        let mut layer = Layer::new();
        layer
            .add(Entry::file("/a", 0o644, vec![7u8; 100_000]))
            .expect("add");
        let one = layer.render().expect("render");
        let two = layer.render().expect("render");
        assert_eq!(one.blob, two.blob);
        assert_eq!(one.digest, Digest::of(&one.blob));
        let mut tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(one.blob.as_slice()),
            &mut tar,
        )
        .expect("gunzip");
        assert_eq!(one.diff_id, Digest::of(&tar));
        assert_eq!(one.uncompressed_size, tar.len() as u64);
        assert!(one.size() < 2_000, "100 kB of one byte compresses");
    }

    #[test]
    fn long_paths_survive_the_round_trip() {
        let long = format!("/opt/{}/file", "d".repeat(150));
        let mut layer = Layer::new();
        layer.add(Entry::file(&long, 0o644, "x")).expect("add");
        assert!(names(&layer).contains(&long[1..].to_owned()));
    }
}
