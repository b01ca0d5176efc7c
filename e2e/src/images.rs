//! The images the node runs, none of them pulled: weft's own (proxy,
//! injector, control) and the pause image, written by `weft-image`, plus
//! the node's CoreDNS and a busybox image for test workloads. They are OCI
//! archives under `e2e/.images/`, imported into the node's containerd under
//! the names below; `weft install --registry localhost/weft` points the
//! manifests at them. Rebuilding is a no-op when no input changed.

use std::path::{Path, PathBuf};

use weft_image::layer::{Entry, Layer};
use weft_image::stamp::write_archive_if_changed;
use weft_image::{ImageSpec, WrittenImage};

use crate::bins::{Binaries, crate_dir, workspace_root};
use crate::error::{Error, Result};

/// The registry prefix the local images are named under.
pub const REGISTRY: &str = weft_image::weft::DEFAULT_REGISTRY;

/// The tag of weft's own images: the workspace version.
pub const TAG: &str = weft_image::weft::WEFT_TAG;

/// The demo app's image (`examples/emojivoto`): one binary, four roles.
pub fn emojivoto_image() -> String {
    weft_image::weft::image_name(REGISTRY, "emojivoto", TAG)
}

/// The busybox image test workloads run (`busybox httpd`, `wget`, `sh`).
pub const BUSYBOX_IMAGE: &str = "localhost/weft/busybox:1.35";

/// The sandbox (pause) image containerd's CRI uses.
pub fn pause_image() -> String {
    weft_image::weft::pause_image_name(REGISTRY)
}

/// weft's proxy image on the local node.
pub fn proxy_image() -> String {
    weft_image::weft::image_name(REGISTRY, "weft-proxy", TAG)
}

/// Where the archives and the static binaries are kept.
pub fn images_dir() -> PathBuf {
    crate_dir().join(".images")
}

/// Builds (when stale) every image the node needs and returns the written
/// images, weft's first. The static binaries are a `cargo build --release
/// --target x86_64-unknown-linux-musl`: minutes cold, seconds warm.
pub async fn build() -> Result<Vec<WrittenImage>> {
    tokio::task::spawn_blocking(build_blocking)
        .await
        .map_err(|e| Error::Io {
            context: "building the node's images".to_string(),
            source: std::io::Error::other(e),
        })?
}

/// The archive paths of [`build`].
pub async fn ensure() -> Result<Vec<PathBuf>> {
    Ok(build().await?.into_iter().map(|i| i.archive).collect())
}

fn build_blocking() -> Result<Vec<WrittenImage>> {
    let dir = images_dir();
    let bins_dir = dir.join("bin");
    let image_err = |e: weft_image::ImageError| Error::Images(e.to_string());
    weft_image::bins::build_all(&workspace_root(), &bins_dir).map_err(image_err)?;
    let mut images =
        weft_image::write_weft_images(&bins_dir, &dir, REGISTRY, TAG).map_err(image_err)?;
    let cluster_bins = Binaries::ensure()?;
    for (file, spec) in [
        (
            "emojivoto.tar",
            emojivoto_spec(&bins_dir.join("emojivoto"))?,
        ),
        ("coredns.tar", coredns_spec(&cluster_bins.coredns)?),
        ("busybox.tar", busybox_spec()?),
    ] {
        images.push(write_archive_if_changed(&spec, &dir.join(file)).map_err(image_err)?);
    }
    Ok(images)
}

/// One layer of `/etc` (runc mounts resolv.conf and hosts there), a
/// sticky `/tmp`, and `entries`.
fn layer_with(entries: Vec<Entry>) -> Result<Layer> {
    let mut layer = Layer::new();
    for e in [Entry::dir("/etc", 0o755), Entry::dir("/tmp", 0o1777)]
        .into_iter()
        .chain(entries)
    {
        layer.add(e).map_err(|e| Error::Images(e.to_string()))?;
    }
    Ok(layer)
}

/// An image of one static binary at `path`, run as `user`.
fn binary_image(name: String, binary: &Path, path: &str, user: &str) -> Result<ImageSpec> {
    Ok(ImageSpec {
        name,
        layers: vec![layer_with(vec![Entry::host_file(path, 0o755, binary)])?],
        entrypoint: vec![path.to_string()],
        cmd: Vec::new(),
        env: vec![weft_image::weft::PATH_ENV.to_string()],
        user: user.to_string(),
        workdir: String::new(),
        labels: Default::default(),
    })
}

/// The emojivoto-compatible demo app, as a non-root user.
fn emojivoto_spec(binary: &Path) -> Result<ImageSpec> {
    binary_image(
        emojivoto_image(),
        binary,
        "/usr/bin/emojivoto",
        "65532:65532",
    )
}

/// CoreDNS from `e2e/go/coredns` (a static Go binary), as the node's DNS.
fn coredns_spec(binary: &Path) -> Result<ImageSpec> {
    binary_image(
        crate::node::addons::COREDNS_IMAGE.to_string(),
        binary,
        "/coredns",
        "65532:65532",
    )
}

/// The applets test workloads use, as links to the one static binary.
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "httpd", "wget", "nc", "sleep", "true", "false", "cat", "echo", "hostname", "ls", "env",
    "timeout", "printf", "nslookup", "id", "ps",
];

/// Debian's static busybox (package busybox-static): a shell, an HTTP
/// server and client for test workloads, with a page and a CGI that names
/// the pod that answered.
fn busybox_spec() -> Result<ImageSpec> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(Error::Host {
            what: "/bin/busybox not found".to_string(),
            detail: "the test workloads' image needs Debian's busybox-static; run `make deps`"
                .to_string(),
        });
    }
    weft_image::elf::ensure_static(busybox).map_err(|_| Error::Host {
        what: "/bin/busybox is not statically linked".to_string(),
        detail:
            "install Debian's busybox-static instead of busybox (apt-get install busybox-static)"
                .to_string(),
    })?;
    let mut entries = vec![Entry::host_file("/bin/busybox", 0o755, busybox)];
    entries.extend(
        BUSYBOX_APPLETS
            .iter()
            .map(|applet| Entry::symlink(&format!("/bin/{applet}"), "busybox")),
    );
    entries.push(Entry::file(
        "/www/index.html",
        0o644,
        "weft e2e
",
    ));
    entries.push(Entry::file(
        "/www/cgi-bin/pod",
        0o755,
        "#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
hostname
",
    ));
    let layer = layer_with(entries)?;
    Ok(ImageSpec {
        name: BUSYBOX_IMAGE.to_string(),
        layers: vec![layer],
        entrypoint: Vec::new(),
        cmd: vec!["sh".to_string()],
        env: vec![weft_image::weft::PATH_ENV.to_string()],
        user: String::new(),
        workdir: String::new(),
        labels: Default::default(),
    })
}
