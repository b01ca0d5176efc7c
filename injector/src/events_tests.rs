//! Unit tests of the Event decision and of the queue in front of the publisher.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::*;
use crate::InjectorConfig;
use crate::admission::{self, API_VERSION, KIND};

const RS_UID: &str = "6a0c8f4e-1d2b-4c5a-9e8f-0123456789ab";

fn replicaset_owner(controller: bool) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c",
           "uid": RS_UID, "controller": controller, "blockOwnerDeletion": true})
}

/// A pod as the ReplicaSet controller submits it.
fn pod(annotations: Value, owners: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-7d9f8c-", "namespace": "shop",
                     "annotations": annotations, "ownerReferences": owners},
        "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
    })
}

fn request(object: Value, operation: &str, dry_run: bool) -> AdmissionRequest {
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": "0d4f2b4e-8a1c-4b7e-9f3a-5c6d7e8f9a0b",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "object": object,
            "dryRun": dry_run,
        },
    });
    admission::parse(&serde_json::to_vec(&body).expect("json")).expect("a valid review")
}

fn namespace(inject: Option<&str>) -> BTreeMap<String, String> {
    inject
        .map(|v| ("weft.dev/inject".to_string(), v.to_string()))
        .into_iter()
        .collect()
}

/// The Event for `object` created (not dry-run) in namespace `shop` annotated `inject`.
fn event_for(object: Value, inject: Option<&str>) -> Option<InjectionEvent> {
    let request = request(object, "CREATE", false);
    let reviewed = admission::review(&request, &namespace(inject), &InjectorConfig::default());
    for_review(&request, &reviewed)
}

#[test]
fn an_injected_pod_gets_a_normal_event_on_its_controller() {
    let event = event_for(
        pod(json!({}), json!([replicaset_owner(true)])),
        Some("enabled"),
    )
    .expect("an event");
    assert_eq!(event.type_, EventType::Normal);
    assert_eq!(event.reason, REASON_INJECTED);
    assert_eq!(
        event.regarding,
        ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("web-7d9f8c".into()),
            namespace: Some("shop".into()),
            uid: Some(RS_UID.into()),
            ..ObjectReference::default()
        }
    );
    assert!(
        event.note.starts_with(
            "Added the weft proxy (native sidecar) to a new pod: \
             namespace \"shop\" is annotated weft.dev/inject=enabled. Added "
        ),
        "{}",
        event.note
    );
    assert!(
        event.note.contains("initContainers: weft-init, weft-proxy"),
        "{}",
        event.note
    );
    assert!(
        event.note.contains("volumes: weft-identity-token"),
        "{}",
        event.note
    );
    let kube = event.to_kube();
    assert_eq!(kube.action, ACTION);
    assert_eq!(kube.reason, REASON_INJECTED);
    assert_eq!(kube.note.as_deref(), Some(event.note.as_str()));
    assert!(kube.secondary.is_none());
}

#[test]
fn the_note_names_overrides_and_warnings() {
    let annotations = json!({
        "config.weft.dev/native-sidecar": "false",
        "config.weft.dev/proxy-cpu-requets": "50m",
    });
    let event = event_for(
        pod(annotations, json!([replicaset_owner(true)])),
        Some("enabled"),
    )
    .expect("an event");
    assert_eq!(event.reason, REASON_INJECTED);
    assert!(event.note.contains("(classic sidecar)"), "{}", event.note);
    assert!(
        event.note.contains("Overrides: native-sidecar=pod"),
        "{}",
        event.note
    );
    assert!(
        event.note.contains("Warnings: ") && event.note.contains("proxy-cpu-requets"),
        "{}",
        event.note
    );
}

#[test]
fn a_skip_the_user_should_fix_is_a_warning_event() {
    let annotations = json!({"config.weft.dev/proxy-cpu-request": "lots"});
    let event = event_for(
        pod(annotations, json!([replicaset_owner(true)])),
        Some("enabled"),
    )
    .expect("an event");
    assert_eq!(event.type_, EventType::Warning);
    assert_eq!(event.reason, REASON_SKIPPED);
    assert_eq!(event.regarding.name.as_deref(), Some("web-7d9f8c"));
    assert!(
        event
            .note
            .starts_with("Did not add the weft proxy to a new pod: annotation config.weft.dev/proxy-cpu-request on the pod is \"lots\""),
        "{}",
        event.note
    );

    let invalid = event_for(
        pod(json!({}), json!([replicaset_owner(true)])),
        Some("yes please"),
    )
    .expect("an event for an invalid weft.dev/inject value");
    assert_eq!(invalid.reason, REASON_SKIPPED);
    assert!(invalid.note.contains("\"yes please\""), "{}", invalid.note);
}

#[test]
fn the_policy_working_as_meant_makes_no_event() {
    let owned = |annotations| pod(annotations, json!([replicaset_owner(true)]));
    assert_eq!(event_for(owned(json!({})), None), None, "not enabled");
    assert_eq!(event_for(owned(json!({})), Some("disabled")), None);
    assert_eq!(
        event_for(
            owned(json!({"weft.dev/inject": "disabled"})),
            Some("enabled")
        ),
        None
    );
}

#[test]
fn dry_runs_and_other_requests_make_no_event() {
    let owned = pod(json!({}), json!([replicaset_owner(true)]));
    let enabled = namespace(Some("enabled"));
    let config = InjectorConfig::default();
    for (operation, dry_run) in [("CREATE", true), ("UPDATE", false)] {
        let request = request(owned.clone(), operation, dry_run);
        let reviewed = admission::review(&request, &enabled, &config);
        assert_eq!(
            for_review(&request, &reviewed),
            None,
            "{operation} {dry_run}"
        );
    }
    // The same pod as a dry run is still injected: only the Event is left out.
    let request = request(owned.clone(), "CREATE", true);
    let reviewed = admission::review(&request, &enabled, &config);
    assert_eq!(reviewed.outcome, Outcome::Injected);

    let mut binding = request.clone();
    binding.sub_resource = Some("binding".into());
    let reviewed = admission::review(&binding, &enabled, &config);
    assert_eq!(for_review(&binding, &reviewed), None, "a subresource");
}

#[test]
fn only_a_controller_is_the_events_object() {
    assert_eq!(
        event_for(pod(json!({}), json!([])), Some("enabled")),
        None,
        "a bare pod"
    );
    assert_eq!(
        event_for(
            pod(json!({}), json!([replicaset_owner(false)])),
            Some("enabled")
        ),
        None,
        "an owner that is not the controller"
    );
    let mut no_uid = replicaset_owner(true);
    no_uid["uid"] = json!("");
    assert_eq!(
        event_for(pod(json!({}), json!([no_uid])), Some("enabled")),
        None,
        "an owner without a uid"
    );
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "migrate",
                     "uid": "1b2c", "controller": true});
    let owners = json!([replicaset_owner(false), job]);
    let event = event_for(pod(json!({}), owners), Some("enabled")).expect("the Job's event");
    assert_eq!(event.regarding.kind.as_deref(), Some("Job"));
    assert_eq!(event.regarding.api_version.as_deref(), Some("batch/v1"));
}

#[test]
fn owner_references_that_do_not_parse_mean_no_controller() {
    let request = request(
        pod(json!({}), json!([replicaset_owner(true)])),
        "CREATE",
        false,
    );
    let reviewed = admission::review(
        &request,
        &namespace(Some("enabled")),
        &InjectorConfig::default(),
    );
    let mut broken = request.clone();
    if let Some(object) = broken.object.as_mut() {
        object["metadata"]["ownerReferences"] = json!("not a list");
    }
    assert_eq!(for_review(&broken, &reviewed), None);
    assert!(for_review(&request, &reviewed).is_some());
}

#[test]
fn cut_keeps_at_most_max_bytes_on_a_character_boundary() {
    assert_eq!(cut("short".into(), 10), "short");
    assert_eq!(cut("abcdefghijk".into(), 10), "abcdefg...");
    let long = "é".repeat(1000); // 2000 bytes
    let cut_text = cut(long, MAX_NOTE_BYTES);
    assert!(cut_text.len() <= MAX_NOTE_BYTES, "{}", cut_text.len());
    assert!(cut_text.ends_with("é..."));
}

fn sample_event(name: &str) -> InjectionEvent {
    InjectionEvent {
        regarding: ObjectReference {
            kind: Some("ReplicaSet".into()),
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..ObjectReference::default()
        },
        type_: EventType::Normal,
        reason: REASON_INJECTED,
        note: "note".into(),
    }
}

/// A sink that records names, and holds each publish until released.
#[derive(Default)]
struct HeldSink {
    recorded: Mutex<Vec<String>>,
    started: Notify,
    release: Notify,
    fail: bool,
}

impl EventSink for Arc<HeldSink> {
    async fn record(&self, event: &InjectionEvent) -> Result<(), kube::Error> {
        self.started.notify_one();
        self.release.notified().await;
        self.recorded
            .lock()
            .expect("lock")
            .push(event.regarding.name.clone().unwrap_or_default());
        if self.fail {
            Err(kube::Error::Service("refused".into()))
        } else {
            Ok(())
        }
    }
}

/// Waits for the publisher to count `count` events as `result`.
async fn until(metrics: &Metrics, result: EventResult, count: u64) {
    while metrics.events(result) < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let metrics = Arc::new(Metrics::new());
    let sink = Arc::new(HeldSink::default());
    let sender = EventSender::spawn(sink.clone(), 1, metrics.clone());

    sender.send(sample_event("first"));
    // The publisher holds "first"; one more fits in the queue, the third does not.
    sink.started.notified().await;
    sender.send(sample_event("second"));
    sender.send(sample_event("third"));
    assert_eq!(metrics.events(EventResult::Dropped), 1);

    sink.release.notify_one();
    sink.started.notified().await;
    sink.release.notify_one();
    until(&metrics, EventResult::Published, 2).await;
    assert_eq!(
        *sink.recorded.lock().expect("lock"),
        ["first".to_string(), "second".to_string()]
    );
    assert_eq!(metrics.events(EventResult::Failed), 0);
}

#[tokio::test]
async fn refused_events_are_counted_and_the_next_is_published() {
    let metrics = Arc::new(Metrics::new());
    let sink = Arc::new(HeldSink {
        fail: true,
        ..HeldSink::default()
    });
    let sender = EventSender::spawn(sink.clone(), 8, metrics.clone());
    sender.send(sample_event("a"));
    sender.send(sample_event("b"));
    sink.release.notify_one();
    sink.started.notified().await;
    sink.release.notify_one();
    until(&metrics, EventResult::Failed, 2).await;
    assert_eq!(sink.recorded.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_publish_that_never_answers_times_out() {
    let metrics = Arc::new(Metrics::new());
    // Never released: every publish hangs until the timeout.
    let sink = Arc::new(HeldSink::default());
    let (sender, queue) = EventSender::channel(8, metrics.clone());
    let timeout = Duration::from_millis(20);
    let publisher = tokio::spawn(publish_all(sink.clone(), queue, metrics.clone(), timeout));
    sender.send(sample_event("stuck"));
    sender.send(sample_event("next"));
    drop(sender);
    let started = tokio::time::Instant::now();
    // The task ends once the queue is closed and drained.
    publisher.await.expect("publisher task");
    assert!(started.elapsed() >= timeout * 2);
    assert_eq!(metrics.events(EventResult::Failed), 2);
    assert_eq!(metrics.events(EventResult::Published), 0);
    assert!(sink.recorded.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_channel_end_sees_what_is_sent_and_a_closed_queue_drops() {
    let metrics = Arc::new(Metrics::new());
    let (sender, mut queue) = EventSender::channel(4, metrics.clone());
    sender.send(sample_event("seen"));
    let got = queue.recv().await.expect("an event");
    assert_eq!(got.regarding.name.as_deref(), Some("seen"));
    drop(queue);
    sender.send(sample_event("lost"));
    assert_eq!(metrics.events(EventResult::Dropped), 1);
}
