//! `weft inject` end to end: the built binary run on the sample manifests in
//! `examples/`, checked against golden files in `tests/golden/`.
//!
//! After an intended change of output, regenerate the goldens with
//!
//!     WEFT_UPDATE_GOLDEN=1 cargo test -p weft-cli --test inject
//!
//! and review the diff like any other change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use json_patch::{Patch, PatchOperation};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use pretty_assertions::assert_eq;
use serde_json::Value as Json;

const EMOJIVOTO: &str = "examples/emojivoto.yml";
const MORE: &str = "examples/more-workloads.yml";

/// The workspace root: the binary runs there so paths in messages and
/// goldens read `examples/...` on every machine.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// Runs `weft inject <args>` with `stdin` piped in.
fn weft_inject(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("inject")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    // Writing from this thread is safe: the binary reads all of stdin
    // before it writes anything.
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin).expect("stdin written");
    }
    child.wait_with_output().expect("weft exits")
}

/// Runs `weft inject`, which must succeed; returns (stdout, stderr).
fn ok(args: &[&str], stdin: &[u8]) -> (String, String) {
    let out = weft_inject(args, stdin);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert!(
        out.status.success(),
        "weft inject {args:?} failed: {stderr}"
    );
    (stdout, stderr)
}

/// Runs `weft inject`, which must fail; returns stderr.
fn fails(args: &[&str], stdin: &[u8]) -> String {
    let out = weft_inject(args, stdin);
    assert!(!out.status.success(), "weft inject {args:?} succeeded");
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
    String::from_utf8(out.stderr).expect("UTF-8 stderr")
}

/// Compares `actual` with `tests/golden/<name>`, or rewrites the golden file
/// when `WEFT_UPDATE_GOLDEN` is set.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("mkdir golden");
        std::fs::write(&path, actual).expect("golden written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run WEFT_UPDATE_GOLDEN=1 cargo test -p weft-cli --test inject",
            path.display()
        )
    });
    assert_eq!(expected, actual, "golden {name} differs");
}

/// The documents of a YAML stream, as JSON (empty documents dropped).
fn yaml_docs(text: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML document"))
        .filter(|doc: &Json| !doc.is_null())
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).expect("example readable")
}

/// The object of `docs` with this kind, name and namespace.
fn find<'a>(docs: &'a [Json], kind: &str, name: &str, namespace: &str) -> &'a Json {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && d["metadata"]["namespace"].as_str().unwrap_or("default") == namespace
        })
        .unwrap_or_else(|| panic!("{kind}/{name} in {namespace}"))
}

/// Report lines that name a workload (not warnings, not the summary).
fn workload_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" (ns ")).collect()
}

#[test]
fn emojivoto_golden() {
    let (stdout, stderr) = ok(&[EMOJIVOTO], b"");
    golden("emojivoto.stdout.yml", &stdout);
    golden("emojivoto.stderr.txt", &stderr);
    assert_eq!(workload_lines(&stderr).len(), 4, "{stderr}");
    assert!(stderr.contains("4 of 4 workloads injected"), "{stderr}");
}

#[test]
fn more_workloads_golden() {
    let (stdout, stderr) = ok(&[MORE], b"");
    golden("more-workloads.stdout.yml", &stdout);
    golden("more-workloads.stderr.txt", &stderr);
    for expected in [
        "daemonset/node-exporter (ns monitoring): skipped: ",
        "pod/debug-shell (ns default): skipped: ",
        "deployment/payments (ns shop): skipped: ",
        "deployment/orders (ns shop): injected",
        "statefulset/cache (ns shop): injected",
        "replicaset/checkout-canary (ns shop): injected",
        "job/db-migrate (ns shop): injected",
        "cronjob/nightly-report (ns shop): injected",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in\n{stderr}");
    }
    // The malformed override is named in the reason.
    let payments = workload_lines(&stderr)
        .into_iter()
        .find(|l| l.starts_with("deployment/payments"))
        .expect("payments reported");
    assert!(payments.contains("skip-outbound-ports"), "{payments}");
    assert!(payments.contains("9000-8000"), "{payments}");
}

#[test]
fn patch_golden_and_patches_only_add_and_apply_to_the_input() {
    let (review, _) = ok(&["--patch", EMOJIVOTO], b"");
    golden("emojivoto.patch.json", &review);

    for example in [EMOJIVOTO, MORE] {
        let (review, _) = ok(&["--patch", example], b"");
        let (injected, _) = ok(&[example], b"");
        let inputs = yaml_docs(&read(example));
        let outputs = yaml_docs(&injected);
        let entries: Vec<Json> = serde_json::from_str(&review).expect("--patch prints JSON");
        assert!(!entries.is_empty());
        for entry in entries {
            let kind = entry["kind"].as_str().expect("kind");
            let name = entry["name"].as_str().expect("name");
            let namespace = entry["namespace"].as_str().expect("namespace");
            let patch: Patch =
                serde_json::from_value(entry["patch"].clone()).expect("a valid JSON patch");
            assert!(!patch.0.is_empty(), "{kind}/{name}: empty patch");
            for op in &patch.0 {
                assert!(
                    matches!(op, PatchOperation::Add(_)),
                    "{kind}/{name}: not an add: {op:?}"
                );
            }
            let mut object = find(&inputs, kind, name, namespace).clone();
            json_patch::patch(&mut object, &patch.0).expect("the patch applies to the input");
            assert_eq!(
                &object,
                find(&outputs, kind, name, namespace),
                "{kind}/{name}: patch and printed object disagree"
            );
        }
    }
}

#[test]
fn injecting_twice_changes_nothing() {
    for example in [EMOJIVOTO, MORE] {
        let (once, first_report) = ok(&[example], b"");
        let (twice, second_report) = ok(&["-"], once.as_bytes());
        assert_eq!(
            once, twice,
            "{example}: second injection changed the output"
        );
        let first = workload_lines(&first_report);
        let second = workload_lines(&second_report);
        assert_eq!(first.len(), second.len());
        for (before, after) in first.iter().zip(&second) {
            if before.contains("): injected") {
                assert!(after.contains("already injected"), "{after}");
            } else {
                assert_eq!(before, after);
            }
        }
        assert!(
            second_report.lines().any(|l| l.starts_with("0 of ")),
            "{second_report}"
        );
    }
}

#[test]
fn stdin_reads_like_a_file() {
    let (from_file, file_report) = ok(&[EMOJIVOTO], b"");
    let (from_stdin, stdin_report) = ok(&["-"], read(EMOJIVOTO).as_bytes());
    assert_eq!(from_file, from_stdin);
    assert_eq!(file_report, stdin_report);
}

#[test]
fn folders_are_read_recursively_in_path_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("b/nested")).expect("mkdir");
    std::fs::copy(root().join(MORE), dir.path().join("b/nested/more.yaml")).expect("copy");
    std::fs::copy(root().join(EMOJIVOTO), dir.path().join("a.yml")).expect("copy");
    std::fs::write(dir.path().join("README.md"), "# not a manifest\n").expect("write");
    let folder = dir.path().to_str().expect("UTF-8 temp path");

    let (from_folder, folder_report) = ok(&[folder], b"");
    let (from_files, files_report) = ok(&[EMOJIVOTO, MORE], b"");
    assert_eq!(from_folder, from_files);
    assert_eq!(folder_report, files_report);
}

#[test]
fn json_and_list_input() {
    // The web Deployment and its Service, as a JSON `List` on stdin.
    let inputs = yaml_docs(&read(EMOJIVOTO));
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            find(&inputs, "Deployment", "web", "emojivoto"),
            find(&inputs, "Service", "web-svc", "emojivoto"),
        ],
    });
    let (stdout, stderr) = ok(&["-"], list.to_string().as_bytes());
    assert!(
        stderr.starts_with("deployment/web (ns emojivoto): injected"),
        "{stderr}"
    );
    let out: Json = serde_json::from_str(&stdout).expect("JSON in, JSON out");
    assert_eq!(out["kind"], "List");
    assert_eq!(
        out["items"][1], list["items"][1],
        "the Service passes through"
    );
    let (yaml, _) = ok(&[EMOJIVOTO], b"");
    assert_eq!(
        out["items"][0],
        *find(&yaml_docs(&yaml), "Deployment", "web", "emojivoto"),
        "same injection as from YAML"
    );

    // A stream of two JSON objects, and `-o yaml` to convert.
    let stream = format!("{}\n{}", list["items"][0], list["items"][1]);
    let (stdout, _) = ok(&["-"], stream.as_bytes());
    let values: Vec<Json> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("a JSON stream");
    assert_eq!(values.len(), 2);
    let (as_yaml, _) = ok(&["-o", "yaml", "-"], stream.as_bytes());
    assert_eq!(yaml_docs(&as_yaml), values);
}

#[test]
fn injected_template_is_a_valid_pod_spec() {
    let (stdout, _) = ok(&[EMOJIVOTO], b"");
    let docs = yaml_docs(&stdout);
    let web: Deployment =
        serde_json::from_value(find(&docs, "Deployment", "web", "emojivoto").clone())
            .expect("a Kubernetes Deployment");
    let template = web.spec.expect("spec").template;
    let spec: PodSpec = template.spec.expect("pod spec");
    let init: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    // Native sidecar (the default): the init step, then the proxy, first.
    assert_eq!(init, ["weft-init", "weft-proxy"]);
    let proxy = &spec.init_containers.as_ref().expect("init containers")[1];
    assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.containers[0].name, "web-svc");
    let annotations = template
        .metadata
        .and_then(|m| m.annotations)
        .expect("annotations");
    assert_eq!(
        annotations.get("weft.dev/injected-by").map(String::as_str),
        Some(concat!("weft-cli v", env!("CARGO_PKG_VERSION")))
    );
    assert!(annotations.contains_key("weft.dev/inject-digest"));

    // Classic mode on the canary: the proxy comes first in `containers`.
    let (stdout, _) = ok(&[MORE], b"");
    let canary = find(&yaml_docs(&stdout), "ReplicaSet", "checkout-canary", "shop").clone();
    let spec: PodSpec =
        serde_json::from_value(canary["spec"]["template"]["spec"].clone()).expect("a pod spec");
    assert_eq!(spec.containers[0].name, "weft-proxy");
    let init: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, ["fetch-prices", "weft-init"]);
}

#[test]
fn flags_namespace_and_proxy_image() {
    let (stdout, stderr) = ok(
        &[
            "-n",
            "staging",
            "--proxy-image",
            "registry.local/weft-proxy:dev",
            MORE,
        ],
        b"",
    );
    assert!(
        stderr.contains("pod/debug-shell (ns staging): skipped"),
        "{stderr}"
    );
    // An object's own namespace wins over `-n`.
    assert!(
        stderr.contains("deployment/orders (ns shop): injected"),
        "{stderr}"
    );
    let orders = find(&yaml_docs(&stdout), "Deployment", "orders", "shop").clone();
    let images: Vec<_> = orders["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .map(|c| c["image"].as_str().expect("image"))
        .collect();
    assert_eq!(images, ["registry.local/weft-proxy:dev"; 2]);

    let err = fails(&["--proxy-image", "bad image", MORE], b"");
    assert!(err.contains("--proxy-image"), "{err}");
}

#[test]
fn objects_that_are_not_valid_pods_are_skipped_unchanged() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  template:\n    spec:\n      containers: not-a-list\n\
                 ---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: empty\nspec:\n  schedule: '* * * * *'\n";
    let (stdout, stderr) = ok(&["-"], input.as_bytes());
    assert_eq!(yaml_docs(&stdout), yaml_docs(input), "output unchanged");
    let lines = workload_lines(&stderr);
    assert!(
        lines[0].starts_with("deployment/broken (ns default): skipped: "),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "cronjob/empty (ns default): skipped: no pod template (spec.jobTemplate.spec.template)"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: ConfigMap\n---\nkind: Deployment\nmetadata: {name: [oops\n",
    )
    .expect("write");
    let bad = bad.to_str().expect("UTF-8 temp path");
    let err = fails(&[EMOJIVOTO, bad], b"");
    assert!(
        err.contains(&format!("{bad}: document 2: invalid YAML")),
        "{err}"
    );

    let err = fails(&["examples/no-such-file.yml"], b"");
    assert!(
        err.contains("examples/no-such-file.yml: No such file or directory"),
        "{err}"
    );

    let err = fails(&["-"], b"{\"kind\": \"Pod\",");
    assert!(err.contains("<stdin>: document 1: invalid JSON"), "{err}");

    let err = fails(&["-"], &[0xff, 0xfe]);
    assert!(err.contains("<stdin>: not UTF-8 text"), "{err}");
}

#[test]
fn passes_through_what_it_does_not_inject() {
    let input = "# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  z: '1'\n  a: '2'\n";
    let (stdout, stderr) = ok(&["-"], input.as_bytes());
    assert_eq!(
        stdout,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  z: '1'\n  a: '2'\n"
    );
    assert_eq!(stderr, "no workloads found: nothing to inject\n");
}
