//! A spec written to an archive twice gives the same bytes; any change to
//! an input changes the digest; and the archive reads back as a valid OCI
//! layout whose config and layers are what the spec said.

mod oci;

use std::collections::BTreeMap;
use std::path::Path;

use weft_image::{Entry, ImageSpec, Layer, write_archive};

fn spec(host_file: &Path) -> ImageSpec {
    let mut base = Layer::new();
    base.add(Entry::dir("/tmp", 0o1777)).expect("tmp");
    base.add(Entry::file("/etc/motd", 0o644, "hello\n"))
        .expect("motd");
    let mut app = Layer::new();
    app.add(Entry::host_file("/usr/bin/app", 0o755, host_file).owner(1000, 1001))
        .expect("app");
    app.add(Entry::symlink("/usr/local/bin/app", "../../bin/app"))
        .expect("link");
    app.add(Entry::dir("/var/lib/app", 0o700).owner(1000, 1001))
        .expect("dir");
    ImageSpec {
        name: "localhost/test/app:v1.2.3".into(),
        layers: vec![base, app],
        entrypoint: vec!["/usr/bin/app".into()],
        cmd: vec!["serve".into(), "--port=80".into()],
        env: vec!["PATH=/usr/bin".into(), "B=2".into()],
        user: "1000:1001".into(),
        workdir: "/var/lib/app".into(),
        labels: BTreeMap::from([("z".into(), "last".into()), ("a".into(), "first".into())]),
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_and_a_changed_file_a_new_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = dir.path().join("app");
    std::fs::write(&host, vec![42u8; 50_000]).expect("write app");
    let spec = spec(&host);

    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let one = write_archive(&spec, &a).expect("first");
    // The host file's own metadata must not matter, only its bytes.
    let f = std::fs::File::options()
        .write(true)
        .open(&host)
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .expect("touch");
    drop(f);
    let two = write_archive(&spec, &b).expect("second");
    assert_eq!(one.manifest_digest, two.manifest_digest);
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    assert_eq!(
        oci::read_image(&a).manifest_digest,
        one.manifest_digest.as_str()
    );

    std::fs::write(&host, vec![43u8; 50_000]).expect("change app");
    let changed = write_archive(&spec, &dir.path().join("c.tar")).expect("third");
    assert_ne!(changed.manifest_digest, one.manifest_digest);
    assert_eq!(
        changed.layers[0], one.layers[0],
        "the untouched layer is the same"
    );
    assert_ne!(changed.layers[1].digest, one.layers[1].digest);

    let mut other = spec.clone();
    other.env.push("C=3".into());
    let config_only = write_archive(&other, &dir.path().join("d.tar")).expect("fourth");
    assert_ne!(config_only.manifest_digest, changed.manifest_digest);
}

#[test]
fn the_archive_is_an_oci_layout_holding_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = dir.path().join("app");
    std::fs::write(&host, b"#!app\n").expect("write app");
    let archive = dir.path().join("app.tar");
    let written = write_archive(&spec(&host), &archive).expect("write");
    let image = oci::read_image(&archive);

    let names: Vec<&str> = image.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
    assert_eq!(names.len(), 2 + 4 + 2, "config, manifest and two layers");

    let descriptor = &image.index["manifests"][0];
    assert_eq!(descriptor["digest"], written.manifest_digest.as_str());
    assert_eq!(
        descriptor["annotations"]["io.containerd.image.name"],
        "localhost/test/app:v1.2.3"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "v1.2.3"
    );
    assert_eq!(descriptor["platform"]["architecture"], "amd64");

    let c = &image.config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/app"]));
    assert_eq!(c["Cmd"], serde_json::json!(["serve", "--port=80"]));
    assert_eq!(c["Env"], serde_json::json!(["PATH=/usr/bin", "B=2"]));
    assert_eq!(c["User"], "1000:1001");
    assert_eq!(c["WorkingDir"], "/var/lib/app");
    assert_eq!(c["Labels"], serde_json::json!({"a": "first", "z": "last"}));

    assert_eq!(
        image.layer_sizes,
        written.layers.iter().map(|l| l.size).collect::<Vec<_>>()
    );
    assert_eq!(
        written.compressed_size,
        image.layer_sizes.iter().sum::<u64>()
    );

    let summary = |l: &[oci::TarEntry]| -> Vec<(String, char, u32, u64, u64)> {
        l.iter()
            .map(|e| (e.path.clone(), e.kind, e.mode, e.uid, e.gid))
            .collect()
    };
    assert_eq!(
        summary(&image.layers[0]),
        [
            ("etc/".into(), '5', 0o755, 0, 0),
            ("etc/motd".into(), '0', 0o644, 0, 0),
            ("tmp/".into(), '5', 0o1777, 0, 0),
        ]
    );
    assert_eq!(
        summary(&image.layers[1]),
        [
            ("usr/".into(), '5', 0o755, 0, 0),
            ("usr/bin/".into(), '5', 0o755, 0, 0),
            ("usr/bin/app".into(), '0', 0o755, 1000, 1001),
            ("usr/local/".into(), '5', 0o755, 0, 0),
            ("usr/local/bin/".into(), '5', 0o755, 0, 0),
            ("usr/local/bin/app".into(), '2', 0o777, 0, 0),
            ("var/".into(), '5', 0o755, 0, 0),
            ("var/lib/".into(), '5', 0o755, 0, 0),
            ("var/lib/app/".into(), '5', 0o700, 1000, 1001),
        ]
    );
    let app = image.find("usr/bin/app").expect("app");
    assert_eq!(app.body, b"#!app\n");
    let link = image.find("usr/local/bin/app").expect("link");
    assert_eq!(link.link.as_deref(), Some("../../bin/app"));
}

#[test]
fn an_empty_run_config_is_left_out_and_a_bad_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layer = Layer::new();
    layer.add(Entry::file("/x", 0o644, "x")).expect("x");
    let mut spec = ImageSpec {
        name: "localhost/min:1".into(),
        layers: vec![layer],
        ..ImageSpec::default()
    };
    let archive = dir.path().join("min.tar");
    write_archive(&spec, &archive).expect("write");
    let image = oci::read_image(&archive);
    assert_eq!(image.config["config"], serde_json::json!({}));

    spec.name = "localhost/min".into();
    assert!(write_archive(&spec, &dir.path().join("bad.tar")).is_err());
    assert!(!dir.path().join("bad.tar").exists());
}
