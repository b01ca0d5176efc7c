//! weft's four images, from stand-in binaries: the pause binary (small and
//! static) plays weft-proxy, weft-injector and weft-control too. The proxy
//! image must carry a working iptables nft backend; the last test runs it
//! from the image's own files in a fresh network namespace (needs root;
//! `WEFT_SKIP_ROOT_TESTS=1` skips it elsewhere).

mod oci;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use weft_image::bins::build_pause;
use weft_image::weft::{self, write_weft_images};
use weft_image::{ImageError, WrittenImage};

/// A bins folder with the pause binary under all four names.
fn stand_in_bins(dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    let pause = build_pause(&bins).expect("build pause");
    for name in ["weft-proxy", "weft-injector", "weft-control"] {
        std::fs::copy(&pause, bins.join(name)).expect("copy stand-in");
    }
    bins
}

fn by_name<'a>(images: &'a [WrittenImage], repository: &str) -> &'a WrittenImage {
    images
        .iter()
        .find(|i| {
            i.name
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(&format!("{repository}:")))
        })
        .unwrap_or_else(|| panic!("no image {repository}"))
}

#[test]
fn four_archives_are_written_identically_twice_and_a_rerun_reuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = stand_in_bins(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = write_weft_images(&bins, &a, "localhost/weft", "v0.1.0").expect("first");
    let second = write_weft_images(&bins, &b, "localhost/weft", "v0.1.0").expect("second");
    let names: Vec<&str> = first.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "localhost/weft/weft-proxy:v0.1.0",
            "localhost/weft/weft-injector:v0.1.0",
            "localhost/weft/weft-control:v0.1.0",
            "localhost/weft/pause:3.10-weft",
        ]
    );
    for (x, y) in first.iter().zip(&second) {
        assert!(!x.reused && !y.reused);
        assert_eq!(x.manifest_digest, y.manifest_digest, "{}", x.name);
        assert_eq!(
            std::fs::read(&x.archive).expect("a"),
            std::fs::read(&y.archive).expect("b"),
            "{}",
            x.name
        );
        assert_eq!(
            oci::read_image(&x.archive).manifest_digest,
            x.manifest_digest.as_str()
        );
    }

    // Unchanged inputs: nothing is rewritten, and the answer is the same.
    let before = std::fs::metadata(&first[0].archive)
        .expect("meta")
        .modified()
        .expect("mtime");
    let again = write_weft_images(&bins, &a, "localhost/weft", "v0.1.0").expect("again");
    for (x, y) in first.iter().zip(&again) {
        assert!(y.reused, "{}", y.name);
        assert_eq!(x.manifest_digest, y.manifest_digest);
        assert_eq!(x.layers, y.layers);
        assert_eq!(x.compressed_size, y.compressed_size);
    }
    let after = std::fs::metadata(&first[0].archive)
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(before, after);

    // A changed binary: only the images holding it change.
    let mut proxy = std::fs::read(bins.join("weft-proxy")).expect("read");
    proxy.extend_from_slice(b"changed");
    std::fs::write(bins.join("weft-proxy"), proxy).expect("write");
    let third = write_weft_images(&bins, &a, "localhost/weft", "v0.1.0").expect("third");
    assert!(!third[0].reused);
    assert_ne!(third[0].manifest_digest, first[0].manifest_digest);
    assert!(third[1..].iter().all(|i| i.reused));
    // The stamp was not trusted blindly: the new archive says the new digest.
    assert_eq!(
        oci::read_image(&third[0].archive).manifest_digest,
        third[0].manifest_digest.as_str()
    );
}

#[test]
fn each_image_runs_its_binary_as_its_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = stand_in_bins(dir.path());
    let images = write_weft_images(
        &bins,
        &dir.path().join("out"),
        "localhost/weft",
        weft::WEFT_TAG,
    )
    .expect("write");
    let path_env = serde_json::json!([weft::PATH_ENV]);

    let proxy = oci::read_image(&by_name(&images, "weft-proxy").archive);
    let c = &proxy.config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/weft-proxy"]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]));
    assert_eq!(c["User"], "2102:2102");
    assert_eq!(c["Env"], path_env);
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"],
        weft::WEFT_TAG
    );
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "weft-proxy");
    assert_eq!(
        proxy.index["manifests"][0]["annotations"]["io.containerd.image.name"],
        format!("localhost/weft/weft-proxy:{}", weft::WEFT_TAG)
    );

    for name in ["weft-injector", "weft-control"] {
        let image = oci::read_image(&by_name(&images, name).archive);
        let c = &image.config["config"];
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!([format!("/usr/bin/{name}")]),
            "{name}"
        );
        assert!(c.get("Cmd").is_none(), "{name}");
        assert_eq!(c["User"], "65532:65532", "{name}");
        assert_eq!(c["Env"], path_env, "{name}");
        let bin = image.find(&format!("usr/bin/{name}")).expect("binary");
        assert_eq!((bin.kind, bin.mode, bin.uid), ('0', 0o755, 0));
        assert_eq!(bin.body, std::fs::read(bins.join(name)).expect("read bin"));
        assert_eq!(image.find("tmp").map(|t| t.mode), Some(0o1777), "{name}");
        assert_eq!(image.find("etc").map(|t| t.kind), Some('5'), "{name}");
        // No shell, no libc: the binary and the base folders only.
        let files: Vec<&str> = image
            .layers
            .iter()
            .flatten()
            .filter(|e| e.kind != '5')
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(files, [format!("usr/bin/{name}")], "{name}");
    }
    // The base layer is the same blob in every image, so a node keeps it once.
    let base = |name| by_name(&images, name).layers[0].digest.clone();
    assert_eq!(base("weft-proxy"), base("weft-injector"));
    assert_eq!(base("weft-proxy"), base("weft-control"));

    let pause = oci::read_image(&by_name(&images, "pause").archive);
    let c = &pause.config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/pause"]));
    assert_eq!(c["User"], "65535:65535");
    assert_eq!(pause.find("pause").map(|p| p.mode), Some(0o755));
    assert_eq!(pause.layers.len(), 1);
    assert_eq!(
        pause.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        weft::PAUSE_TAG
    );
}

#[test]
fn the_proxy_image_carries_iptables_nft_with_its_libraries_and_modules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = stand_in_bins(dir.path());
    let images = write_weft_images(&bins, &dir.path().join("out"), "localhost/weft", "v0.1.0")
        .expect("write");
    let proxy = oci::read_image(&by_name(&images, "weft-proxy").archive);

    let multi = proxy
        .find("usr/sbin/xtables-nft-multi")
        .expect("xtables-nft-multi");
    assert_eq!((multi.kind, multi.mode), ('0', 0o755));
    assert_eq!(
        multi.body,
        std::fs::read(weft::XTABLES_NFT_MULTI).expect("host iptables")
    );
    for tool in weft::IPTABLES_TOOLS {
        let link = proxy.find(&format!("usr/sbin/{tool}")).expect("tool");
        assert_eq!(
            (link.kind, link.link.as_deref()),
            ('2', Some("xtables-nft-multi")),
            "{tool}"
        );
    }
    assert!(proxy.find("usr/sbin/iptables-legacy-save").is_none());
    for module in weft::XTABLES_MODULES {
        let path = format!("{}/{module}", &weft::XTABLES_MODULE_DIR[1..]);
        assert_eq!(proxy.find(&path).map(|m| m.kind), Some('0'), "{path}");
    }
    let modules = proxy
        .layers
        .iter()
        .flatten()
        .filter(|e| e.path.contains("/xtables/") && e.kind == '0')
        .count();
    assert_eq!(
        modules,
        weft::XTABLES_MODULES.len(),
        "only the modules the rules use"
    );
    // The loader and the libraries, as regular files where ldd found them
    // (Debian's /lib is a symlink on the host, a folder in the image).
    for lib in [
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libxtables.so.12",
        "lib/x86_64-linux-gnu/libnftnl.so.11",
        "lib/x86_64-linux-gnu/libmnl.so.0",
    ] {
        let e = proxy.find(lib).unwrap_or_else(|| panic!("{lib} missing"));
        assert_eq!(e.kind, '0', "{lib} is a regular file");
        assert_eq!(
            e.body,
            std::fs::read(format!("/{lib}")).expect("host lib"),
            "{lib}"
        );
    }
    assert!(
        proxy.find("bin/sh").is_none() && proxy.find("usr/bin/sh").is_none(),
        "no shell"
    );
    // The binary is the top layer, so a new proxy build reuses iptables'.
    let top = proxy.layers.last().expect("layers");
    assert!(top.iter().any(|e| e.path == "usr/bin/weft-proxy"));
    assert!(!top.iter().any(|e| e.path.contains("xtables")));
}

#[test]
fn a_dynamically_linked_binary_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = stand_in_bins(dir.path());
    std::fs::copy("/bin/sh", bins.join("weft-control")).expect("copy sh");
    let err = write_weft_images(&bins, &dir.path().join("out"), "localhost/weft", "v0.1.0")
        .expect_err("dynamic weft-control");
    assert!(matches!(err, ImageError::NotStatic { .. }), "{err}");
    assert!(err.to_string().contains("weft-control"), "{err}");
}

/// Extracts every layer of `archive` into `root`, lowest first.
fn unpack_image(archive: &Path, root: &Path) {
    let image = oci::read_image(archive);
    for layer in &image.layers {
        for e in layer {
            let path = root.join(e.path.trim_end_matches('/'));
            match e.kind {
                '5' => std::fs::create_dir_all(&path).expect("mkdir"),
                '2' => std::os::unix::fs::symlink(e.link.as_deref().expect("target"), &path)
                    .expect("symlink"),
                _ => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::write(&path, &e.body).expect("write");
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))
                        .expect("chmod");
                }
            }
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A network namespace of its own, removed when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("weft-image-{}", std::process::id());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip");
        assert!(status.success(), "ip netns add {name}");
        Self(name)
    }

    /// Runs `args` chrooted into `root` in this namespace, with the image's
    /// PATH and nothing else of this environment, feeding it `stdin`.
    fn run_in_image(&self, root: &Path, args: &[&str], stdin: &str) -> String {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "chroot"])
            .arg(root)
            .args(args)
            .env_clear()
            .env("PATH", weft::PATH_ENV.trim_start_matches("PATH="))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).expect("write stdin");
        drop(pipe);
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{args:?} in the image failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn the_proxy_image_s_iptables_loads_and_reads_back_weft_s_rules() {
    if !is_root() {
        assert!(
            std::env::var_os("WEFT_SKIP_ROOT_TESTS").is_some(),
            "needs root for a network namespace and chroot; run as root (CI does) \
             or set WEFT_SKIP_ROOT_TESTS=1"
        );
        eprintln!("skipped: needs root (WEFT_SKIP_ROOT_TESTS is set)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = stand_in_bins(dir.path());
    let images = write_weft_images(&bins, &dir.path().join("out"), "localhost/weft", "v0.1.0")
        .expect("write");
    let root = dir.path().join("rootfs");
    unpack_image(&by_name(&images, "weft-proxy").archive, &root);

    // What `weft-proxy init` does by default: read the nat table, load the
    // payload (the proxy's golden file) in one restore, and on a re-run
    // read it back. Run by the names init uses, found through PATH.
    let payload = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proxy/tests/golden/init/defaults.rules"),
    )
    .expect("golden payload");
    let netns = Netns::new();
    netns.run_in_image(&root, &["iptables-nft-save", "-t", "nat"], "");
    netns.run_in_image(&root, &["iptables-nft-restore", "--noflush"], &payload);
    let saved = netns.run_in_image(&root, &["iptables-nft-save", "-t", "nat"], "");
    let rules: Vec<&str> = saved.lines().filter(|l| l.starts_with("-A ")).collect();
    let expected: Vec<&str> = payload.lines().filter(|l| l.starts_with("-A ")).collect();
    let sorted = |mut v: Vec<&str>| -> Vec<String> {
        // iptables-save prints built-in chains first; the payload appends
        // their jumps last. The set of rules is what must match.
        v.sort_unstable();
        v.into_iter().map(str::to_owned).collect()
    };
    assert_eq!(sorted(rules), sorted(expected), "saved:\n{saved}");
}
