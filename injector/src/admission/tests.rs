//! Unit tests of the pure review step: wire form, outcomes, bad bodies.

use super::*;
use serde_json::json;

fn review_body(request: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": request,
    }))
    .expect("json")
}

fn pod_request(pod: serde_json::Value) -> serde_json::Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "emojivoto",
        "operation": "CREATE",
        "object": pod,
    })
}

fn web_pod(annotations: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "emojivoto", "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "buoyantio/emojivoto-web:v11",
            "ports": [{"name": "http", "containerPort": 8080}]}]},
    })
}

fn config() -> InjectorConfig {
    InjectorConfig::default()
}

fn enabled() -> BTreeMap<String, String> {
    BTreeMap::from([("weft.dev/inject".to_owned(), "enabled".to_owned())])
}

fn run(body: &[u8], ns: &BTreeMap<String, String>) -> Reviewed {
    let request = parse(body).expect("valid review");
    review(&request, ns, &config())
}

#[test]
fn injected_pod_patch_is_base64_of_a_json_array_of_ops() {
    let reviewed = run(&review_body(pod_request(web_pod(json!({})))), &enabled());
    assert_eq!(reviewed.outcome, Outcome::Injected);
    let response = &reviewed.review.response;
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert!(response.allowed);
    assert_eq!(response.patch_type, Some("JSONPatch"));

    let encoded = response.patch.as_deref().expect("a patch");
    let text = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("standard padded base64");
    let ops: serde_json::Value = serde_json::from_slice(&text).expect("patch is JSON");
    let ops = ops.as_array().expect("patch is a JSON array");
    assert!(!ops.is_empty());
    for op in ops {
        assert!(op.is_object(), "an op, not a number: {op}");
        assert_eq!(op["op"], "add");
        assert!(op["path"].is_string());
    }
    // And it is a patch that applies to the pod it was made for.
    let patch: json_patch::Patch = serde_json::from_slice(&text).expect("a JSON patch");
    let mut pod = web_pod(json!({}));
    json_patch::patch(&mut pod, &patch).expect("patch applies");
    let containers = pod.to_string();
    assert!(containers.contains("weft-proxy"));
}

#[test]
fn the_wire_form_uses_kubernetes_field_names() {
    let reviewed = run(&review_body(pod_request(web_pod(json!({})))), &enabled());
    let wire = serde_json::to_value(&reviewed.review).expect("serializes");
    assert_eq!(wire["apiVersion"], API_VERSION);
    assert_eq!(wire["kind"], KIND);
    assert_eq!(wire["response"]["patchType"], "JSONPatch");
    assert!(wire["response"]["patch"].is_string());
    assert!(wire["response"]["auditAnnotations"].is_object());
}

#[test]
fn skipped_pod_has_no_patch() {
    let reviewed = run(
        &review_body(pod_request(web_pod(json!({})))),
        &BTreeMap::new(),
    );
    assert_eq!(reviewed.outcome, Outcome::Skipped);
    let wire = serde_json::to_value(&reviewed.review).expect("serializes");
    assert_eq!(wire["response"]["allowed"], true);
    assert!(wire["response"].get("patch").is_none());
    assert!(wire["response"].get("patchType").is_none());
}

#[test]
fn other_kinds_are_allowed_unchanged() {
    let body = review_body(json!({
        "uid": "u1",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": "emojivoto",
        "operation": "CREATE",
        "object": {"kind": "Deployment"},
    }));
    let reviewed = run(&body, &enabled());
    assert_eq!(reviewed.outcome, Outcome::AllowedOtherKind);
    assert_eq!(reviewed.review.response.uid, "u1");
    assert!(reviewed.review.response.patch.is_none());
}

#[test]
fn pod_subresources_and_updates_are_not_planned() {
    let mut request = pod_request(web_pod(json!({})));
    request["subResource"] = json!("ephemeralcontainers");
    assert_eq!(
        run(&review_body(request), &enabled()).outcome,
        Outcome::AllowedOtherKind
    );

    let mut request = pod_request(web_pod(json!({})));
    request["operation"] = json!("UPDATE");
    assert_eq!(
        run(&review_body(request), &enabled()).outcome,
        Outcome::AllowedOtherOperation
    );
}

#[test]
fn unparsable_pod_is_allowed_with_a_warning() {
    let pod = json!({"metadata": {"name": 7}, "spec": {"containers": "not a list"}});
    let reviewed = run(&review_body(pod_request(pod)), &enabled());
    assert_eq!(reviewed.outcome, Outcome::InvalidPod);
    let response = &reviewed.review.response;
    assert!(response.allowed);
    assert!(response.patch.is_none());
    assert_eq!(response.warnings.len(), 1);
    assert!(response.warnings[0].starts_with(POD_NOT_INJECTED));
}

#[test]
fn pod_without_object_is_allowed_with_a_warning() {
    let mut request = pod_request(json!(null));
    request.as_object_mut().expect("object").remove("object");
    let reviewed = run(&review_body(request), &enabled());
    assert_eq!(reviewed.outcome, Outcome::InvalidPod);
    assert!(reviewed.review.response.warnings[0].starts_with(POD_NOT_INJECTED));
}

#[test]
fn bad_bodies_are_typed_errors() {
    assert!(matches!(parse(b"{not json"), Err(BadRequest::NotJson(_))));
    assert!(matches!(parse(b"[1,2,3]"), Err(BadRequest::NotJson(_))));
    assert!(matches!(parse(b""), Err(BadRequest::NotJson(_))));
    assert_eq!(
        parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#),
        Err(BadRequest::NotAdmissionReview {
            api_version: Some("admission.k8s.io/v1beta1".into()),
            kind: Some("AdmissionReview".into()),
        })
    );
    assert!(matches!(
        parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#),
        Err(BadRequest::NotAdmissionReview { .. })
    ));
    assert_eq!(
        parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
        Err(BadRequest::MissingRequest)
    );
    assert_eq!(
        parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#),
        Err(BadRequest::MissingUid)
    );
    assert_eq!(
        parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#),
        Err(BadRequest::MissingUid)
    );
    assert!(matches!(
        parse(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#
        ),
        Err(BadRequest::NotJson(_))
    ));
    let too_large = BadRequest::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    assert_eq!(too_large.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.outcome(), Outcome::TooLarge);
    assert_eq!(
        BadRequest::MissingUid.status(),
        http::StatusCode::BAD_REQUEST
    );
}

#[test]
fn outcome_labels_are_distinct_snake_case() {
    let labels: std::collections::BTreeSet<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(labels.len(), Outcome::ALL.len());
    assert!(
        labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
}
