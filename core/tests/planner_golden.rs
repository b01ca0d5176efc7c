//! Golden files for representative pods: for each `golden/NAME.pod.json`
//! (planned in the namespace of `golden/NAME.namespace.json`, with the
//! injector's default configuration) the patch must equal
//! `golden/NAME.patch.json` and the report `golden/NAME.report.txt`.
//!
//! Regenerate after an intended change, then review the diff:
//!
//!     WEFT_UPDATE_GOLDEN=1 cargo test -p weft-core --test planner_golden

mod planner_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::Value;
use weft_core::{InjectorConfig, Plan, plan};

use planner_support::{apply, container_names, contains, only_adds};

/// Every case the issue asks for, so a deleted file cannot pass silently.
const CASES: &[&str] = &[
    "already-injected",
    "bare",
    "classic-sidecar",
    "deployment-pod",
    "disabled-pod",
    "existing-metadata",
    "grpc-named-ports",
    "host-network",
    "init-containers",
    "malformed-overrides",
    "resource-overrides",
];

#[derive(Deserialize)]
struct Namespace {
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The report file: the plan's report, then its audit annotations.
fn report_text(plan: &Plan) -> String {
    let mut text = plan.report();
    text.push_str("audit:\n");
    for (key, value) in &plan.audit {
        let _ = writeln!(text, "  {key}: {value}");
    }
    text
}

fn pretty(value: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| panic!("serialize: {e}"));
    text.push('\n');
    text
}

#[test]
fn every_case_has_its_files() {
    let mut found: Vec<String> = fs::read_dir(golden_dir())
        .unwrap_or_else(|e| panic!("golden dir: {e}"))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".pod.json").map(String::from)
        })
        .collect();
    found.sort();
    assert_eq!(found, CASES, "golden/*.pod.json and CASES disagree");
}

#[test]
fn plans_match_golden_files() {
    let update = std::env::var_os("WEFT_UPDATE_GOLDEN").is_some();
    let dir = golden_dir();
    let config = InjectorConfig::default();
    let mut mismatches = Vec::new();
    for case in CASES {
        let pod: Value = read_json(&dir.join(format!("{case}.pod.json")));
        let namespace: Namespace = read_json(&dir.join(format!("{case}.namespace.json")));
        let plan = plan(&pod, &namespace.name, &namespace.annotations, &config)
            .unwrap_or_else(|e| panic!("{case}: {e}"));

        let patch_path = dir.join(format!("{case}.patch.json"));
        let report_path = dir.join(format!("{case}.report.txt"));
        let report = report_text(&plan);
        if update {
            fs::write(&patch_path, pretty(&plan.patch)).unwrap_or_else(|e| panic!("{e}"));
            fs::write(&report_path, &report).unwrap_or_else(|e| panic!("{e}"));
        }
        // Compared as JSON values: key order in the file does not matter.
        let expected_patch: Value = read_json(&patch_path);
        let actual_patch = serde_json::to_value(&plan.patch).unwrap_or_else(|e| panic!("{e}"));
        if expected_patch != actual_patch {
            mismatches.push(format!("{case}: patch differs:\n{}", pretty(&actual_patch)));
        }
        let expected_report = fs::read_to_string(&report_path).unwrap_or_default();
        if expected_report != report {
            mismatches.push(format!("{case}: report differs:\n{report}"));
        }

        check_applied(case, &pod, &plan);
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nIf the change is intended: WEFT_UPDATE_GOLDEN=1 cargo test -p weft-core --test planner_golden",
        mismatches.join("\n")
    );
}

/// The patch applies, keeps the user's pod, and yields a Pod with weft in it.
fn check_applied(case: &str, pod: &Value, plan: &Plan) {
    assert!(only_adds(&plan.patch), "{case}: only adds");
    let patched = apply(pod, &plan.patch).unwrap_or_else(|e| panic!("{case}: patch applies: {e}"));
    assert!(contains(pod, &patched), "{case}: the user's pod survives");
    let parsed: Result<Pod, _> = serde_json::from_value(patched.clone());
    assert!(
        parsed.is_ok(),
        "{case}: patched pod parses: {:?}",
        parsed.err()
    );
    if !plan.is_injected() {
        assert!(plan.patch.is_empty(), "{case}: a skip has an empty patch");
        return;
    }
    let init = container_names(&patched, "initContainers");
    let containers = container_names(&patched, "containers");
    let native = plan
        .settings
        .as_ref()
        .is_some_and(|s| s.native_sidecar.value);
    if native {
        assert_eq!(
            init[..2],
            ["weft-init", "weft-proxy"],
            "{case}: native layout"
        );
        assert!(!containers.contains(&"weft-proxy".to_string()), "{case}");
    } else {
        assert_eq!(
            init.last().map(String::as_str),
            Some("weft-init"),
            "{case}: classic init last"
        );
        assert_eq!(
            containers.first().map(String::as_str),
            Some("weft-proxy"),
            "{case}: classic proxy first"
        );
    }
    let annotations = &patched["metadata"]["annotations"];
    assert!(
        annotations["weft.dev/inject-digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{case}"
    );
    // Planning the result again changes nothing.
    let again = plan_again(&patched);
    assert!(again.patch.is_empty(), "{case}: second plan is empty");
}

fn plan_again(patched: &Value) -> Plan {
    let enabled = BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]);
    plan(patched, "shop", &enabled, &InjectorConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}
