//! The images weft ships: the proxy (with iptables for its init), the
//! injector, the control plane, and a pause image for the node.
//!
//! Each is a static binary and nothing else, except the proxy's: the init
//! container runs `weft-proxy init`, which execs `iptables-nft-save` and
//! `iptables-nft-restore` through `PATH`. So the proxy image also carries
//! the host's (Debian's) nft backend of iptables: `xtables-nft-multi` with
//! the shared libraries and the dynamic loader ldd names for it, the two
//! symlinks that select its tools, and only the extension modules weft's
//! rules load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bins::{PAUSE_BINARY, RUST_BINARIES};
use crate::elf::ensure_static;
use crate::error::{ImageError, Result};
use crate::layer::{Entry, Layer};
use crate::layout::WrittenImage;
use crate::libs::add_shared_libs;
use crate::spec::ImageSpec;
use crate::stamp::write_archive_if_changed;

/// The registry prefix of the images a local node imports.
pub const DEFAULT_REGISTRY: &str = "localhost/weft";
/// weft's images' tag: the workspace version with a `v` (`v0.1.0`).
pub const WEFT_TAG: &str = concat!("v", env!("CARGO_PKG_VERSION"));
/// The pause image's repository under the registry prefix.
pub const PAUSE_REPOSITORY: &str = "pause";
/// The pause image's tag: it has its own version, not weft's, since it
/// changes only with `pause.c`; the suffix tells it from upstream's 3.10.
pub const PAUSE_TAG: &str = "3.10-weft";
/// `PATH` in every image; runc resolves a pod's bare `command` with it.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The proxy's uid and gid; the init's rules exempt its traffic by uid.
pub const PROXY_UID: u32 = 2102;
/// The injector's and control plane's uid and gid (distroless "nonroot").
pub const NONROOT_UID: u32 = 65532;
/// The pause process's uid and gid ("nobody"-like, as upstream's).
pub const PAUSE_UID: u32 = 65535;

/// The host's iptables nft multi-binary, copied into the proxy image.
pub const XTABLES_NFT_MULTI: &str = "/usr/sbin/xtables-nft-multi";
/// Where libxtables looks for extension modules (its compiled-in
/// `XTABLES_LIBDIR` on Debian amd64).
pub const XTABLES_MODULE_DIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";
/// The extensions `weft-proxy init`'s rules use (proxy/src/init/rules.rs):
/// `-j RETURN` and jumps to a chain (standard), `-m tcp --dport`, `-m
/// comment`, `-m owner --uid-owner` and `-j REDIRECT`. `-p tcp` and `-o lo`
/// need no module. A rule that needs another is a payload error at init, so
/// widening the rules means widening this list.
pub const XTABLES_MODULES: [&str; 5] = [
    "libxt_standard.so",
    "libxt_tcp.so",
    "libxt_comment.so",
    "libxt_owner.so",
    "libxt_REDIRECT.so",
];
/// The tools `weft-proxy init` runs, as symlinks to the multi-binary (which
/// picks the tool by the name it was run as).
pub const IPTABLES_TOOLS: [&str; 2] = ["iptables-nft-save", "iptables-nft-restore"];
/// The Debian package that ships the files above.
pub const IPTABLES_PACKAGE: &str = "iptables";

/// The full name of one of weft's images: `registry/repository:tag`.
pub fn image_name(registry: &str, repository: &str, tag: &str) -> String {
    format!("{}/{repository}:{tag}", registry.trim_end_matches('/'))
}

/// The pause image's full name under `registry`.
pub fn pause_image_name(registry: &str) -> String {
    image_name(registry, PAUSE_REPOSITORY, PAUSE_TAG)
}

/// The proxy image: `weft-proxy` from `bins`, running as 2102, plus
/// iptables for its init.
pub fn proxy_image(bins: &Path, registry: &str, tag: &str) -> Result<ImageSpec> {
    let binary = static_binary(bins, "weft-proxy")?;
    let mut app = Layer::new();
    app.add(Entry::host_file("/usr/bin/weft-proxy", 0o755, binary))?;
    Ok(ImageSpec {
        name: image_name(registry, "weft-proxy", tag),
        layers: vec![base_layer()?, iptables_layer()?, app],
        entrypoint: vec!["/usr/bin/weft-proxy".into()],
        cmd: vec!["run".into()],
        env: vec![PATH_ENV.into()],
        user: format!("{PROXY_UID}:{PROXY_UID}"),
        workdir: String::new(),
        labels: labels("weft-proxy", tag),
    })
}

/// The injector image: `weft-injector` from `bins`, running as 65532.
pub fn injector_image(bins: &Path, registry: &str, tag: &str) -> Result<ImageSpec> {
    single_binary_image(bins, registry, "weft-injector", tag)
}

/// The control-plane image: `weft-control` from `bins`, running as 65532.
pub fn control_image(bins: &Path, registry: &str, tag: &str) -> Result<ImageSpec> {
    single_binary_image(bins, registry, "weft-control", tag)
}

/// The pause image: `pause` from `bins` at `/pause`, running as 65535,
/// named by [`pause_image_name`].
pub fn pause_image(bins: &Path, registry: &str) -> Result<ImageSpec> {
    let binary = static_binary(bins, PAUSE_BINARY)?;
    let mut layer = Layer::new();
    layer.add(Entry::host_file("/pause", 0o755, binary))?;
    Ok(ImageSpec {
        name: pause_image_name(registry),
        layers: vec![layer],
        entrypoint: vec!["/pause".into()],
        cmd: Vec::new(),
        env: vec![PATH_ENV.into()],
        user: format!("{PAUSE_UID}:{PAUSE_UID}"),
        workdir: String::new(),
        labels: labels(PAUSE_REPOSITORY, PAUSE_TAG),
    })
}

/// All four images, each with the archive file name it is written to
/// (`weft-proxy.tar`, ..., `pause.tar`).
pub fn weft_images(bins: &Path, registry: &str, tag: &str) -> Result<Vec<(String, ImageSpec)>> {
    Ok(vec![
        ("weft-proxy.tar".into(), proxy_image(bins, registry, tag)?),
        (
            "weft-injector.tar".into(),
            injector_image(bins, registry, tag)?,
        ),
        (
            "weft-control.tar".into(),
            control_image(bins, registry, tag)?,
        ),
        ("pause.tar".into(), pause_image(bins, registry)?),
    ])
}

/// Writes the archives of [`weft_images`] into `out` (created if needed),
/// skipping any whose inputs are unchanged since the last run, and returns
/// what each holds: name, archive path, manifest digest and sizes.
///
/// `bins` must hold static `weft-proxy`, `weft-injector`, `weft-control`
/// and `pause` ([`crate::bins::build_all`] builds them); the proxy image
/// also reads this machine's iptables (apt package `iptables`).
pub fn write_weft_images(
    bins: &Path,
    out: &Path,
    registry: &str,
    tag: &str,
) -> Result<Vec<WrittenImage>> {
    std::fs::create_dir_all(out)
        .map_err(crate::error::io(format!("creating {}", out.display())))?;
    weft_images(bins, registry, tag)?
        .into_iter()
        .map(|(file, spec)| write_archive_if_changed(&spec, &out.join(file)))
        .collect()
}

fn single_binary_image(bins: &Path, registry: &str, name: &str, tag: &str) -> Result<ImageSpec> {
    let binary = static_binary(bins, name)?;
    let path = format!("/usr/bin/{name}");
    let mut app = Layer::new();
    app.add(Entry::host_file(&path, 0o755, binary))?;
    Ok(ImageSpec {
        name: image_name(registry, name, tag),
        layers: vec![base_layer()?, app],
        entrypoint: vec![path],
        cmd: Vec::new(),
        env: vec![PATH_ENV.into()],
        user: format!("{NONROOT_UID}:{NONROOT_UID}"),
        workdir: String::new(),
        labels: labels(name, tag),
    })
}

/// What every weft image has besides its binary: an empty `/etc` (runc
/// bind-mounts `resolv.conf`, `hosts` and `hostname` into it) and a
/// world-writable, sticky `/tmp`. Identical in every image, so a node
/// stores it once.
fn base_layer() -> Result<Layer> {
    let mut layer = Layer::new();
    layer.add(Entry::dir("/etc", 0o755))?;
    layer.add(Entry::dir("/tmp", 0o1777))?;
    layer.add(Entry::dir("/usr/bin", 0o755))?;
    Ok(layer)
}

fn iptables_layer() -> Result<Layer> {
    let multi = host_file(XTABLES_NFT_MULTI)?;
    let mut layer = Layer::new();
    layer.add(Entry::host_file(XTABLES_NFT_MULTI, 0o755, &multi))?;
    add_shared_libs(&mut layer, &multi)?;
    for tool in IPTABLES_TOOLS {
        layer.add(Entry::symlink(
            &format!("/usr/sbin/{tool}"),
            "xtables-nft-multi",
        ))?;
    }
    for module in XTABLES_MODULES {
        let host = host_file(&format!("{XTABLES_MODULE_DIR}/{module}"))?;
        let path = host.to_string_lossy().into_owned();
        layer.add(Entry::host_file(&path, 0o644, &host))?;
        // Each module links libxtables and libc, already here from the
        // multi-binary; adding them again is a no-op, and a module needing
        // a new library gets it.
        add_shared_libs(&mut layer, &host)?;
    }
    Ok(layer)
}

fn host_file(path: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ImageError::HostFileMissing {
            path: p,
            package: IPTABLES_PACKAGE,
        })
    }
}

fn static_binary(bins: &Path, name: &str) -> Result<PathBuf> {
    let path = bins.join(name);
    if !path.is_file() {
        return Err(ImageError::Io {
            context: format!(
                "{} is not there; `weft-image build-bins --out {}` builds it",
                path.display(),
                bins.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    ensure_static(&path)?;
    Ok(path)
}

fn labels(title: &str, tag: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            title.to_owned(),
        ),
        (
            "org.opencontainers.image.version".to_owned(),
            tag.to_owned(),
        ),
    ])
}

/// The binaries [`write_weft_images`] reads from its `bins` folder.
pub fn required_binaries() -> Vec<&'static str> {
    let mut names: Vec<&str> = RUST_BINARIES.to_vec();
    names.push(PAUSE_BINARY);
    names
}
