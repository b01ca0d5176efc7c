//! Kubernetes Events about injections, so `kubectl describe rs/...` and
//! `kubectl get events` show what weft did to a workload's new pods.
//!
//! [`for_review`] is pure: from an answered review it decides whether there is
//! an Event and builds it. An Event is about the pod's controller (the
//! ReplicaSet, Job, StatefulSet, DaemonSet, ...): at CREATE the pod has no
//! uid yet (and often no name), so it cannot be the Event's object. A pod
//! without a controller gets no Event; its creator saw the `kubectl`
//! warnings and the audit log has the rest.
//!
//! Publishing is best-effort and off the request path: the handler puts the
//! Event on a bounded queue ([`EventSender::send`] never waits) and one
//! background task publishes them in order through kube-rs's
//! [`Recorder`], which folds repeats (same controller, reason and type within
//! 6 minutes) into one `events.k8s.io/v1` Event whose `series.count` grows,
//! so a ReplicaSet creating 100 pods shows one Event "x100", not 100.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::{Event, EventType, Recorder};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::admission::{AdmissionRequest, Outcome, Reviewed};
use crate::decision::Decision;
use crate::metrics::Metrics;
use crate::report::{AUDIT_ADDED, AUDIT_OVERRIDES, AUDIT_REASON, AUDIT_SIDECAR};

/// `reportingController` of every Event (and the Reporter's controller name).
pub const REPORTING_CONTROLLER: &str = "weft-injector";
/// Reason of the Event for injected pods (type `Normal`).
pub const REASON_INJECTED: &str = "Injected";
/// Reason of the Event for pods weft could not inject as asked (type `Warning`).
pub const REASON_SKIPPED: &str = "InjectionSkipped";
/// `action` of both Events: what weft was doing.
pub const ACTION: &str = "Inject";
/// Events waiting to be published; past this, new ones are dropped and counted.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// One publish (a create or a series patch) gets this long before it counts as failed.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// The API server refuses an Event `note` over 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

/// One Event about an injection, before it is published.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectionEvent {
    /// The pod's controller, in the pod's namespace.
    pub regarding: ObjectReference,
    /// `Normal` for an injection, `Warning` for a skip the user should fix.
    pub type_: EventType,
    /// [`REASON_INJECTED`] or [`REASON_SKIPPED`].
    pub reason: &'static str,
    /// What weft did and why, at most 1 kB.
    pub note: String,
}

impl InjectionEvent {
    /// The event as kube-rs's [`Recorder`] takes it.
    pub fn to_kube(&self) -> Event {
        Event {
            type_: self.type_,
            reason: self.reason.to_string(),
            note: Some(self.note.clone()),
            action: ACTION.to_string(),
            secondary: None,
        }
    }
}

/// The Event an answered review calls for, if any.
///
/// Only a Pod CREATE that is not a dry run (a dry run must leave no trace:
/// the webhook declares `sideEffects: None`) and whose pod has a controller.
/// Injected pods get a `Normal` [`REASON_INJECTED`]; skipped pods only when
/// the skip is a warning (an invalid annotation or override, a name or port
/// clash), never for the policy working as meant (`not enabled`,
/// `disabled`, ...), which would be noise on every unmeshed workload.
pub fn for_review(request: &AdmissionRequest, reviewed: &Reviewed) -> Option<InjectionEvent> {
    if request.dry_run || !request.is_pod() || !request.is_create() {
        return None;
    }
    let response = &reviewed.review.response;
    let audit = &response.audit_annotations;
    let (type_, reason, note) = match (reviewed.outcome, reviewed.decision.as_ref()?) {
        (Outcome::Injected, Decision::Inject { .. }) => {
            let mut note = format!(
                "Added the weft proxy ({} sidecar) to a new pod: {}.",
                audit.get(AUDIT_SIDECAR).map_or("native", String::as_str),
                audit.get(AUDIT_REASON).map_or("", String::as_str),
            );
            if let Some(added) = audit.get(AUDIT_ADDED) {
                note.push_str(&format!(" Added {added}."));
            }
            if let Some(overrides) = audit.get(AUDIT_OVERRIDES) {
                note.push_str(&format!(" Overrides: {overrides}."));
            }
            // A controller's pods have no user at a terminal to read the
            // kubectl warnings (typos in override keys, UID clashes): the
            // Event is where they can be seen.
            if !response.warnings.is_empty() {
                note.push_str(&format!(" Warnings: {}", response.warnings.join("; ")));
            }
            (EventType::Normal, REASON_INJECTED, note)
        }
        (Outcome::Skipped, Decision::Skip(skip)) if skip.is_warning() => (
            EventType::Warning,
            REASON_SKIPPED,
            format!("Did not add the weft proxy to a new pod: {skip}."),
        ),
        _ => return None,
    };
    let owner = controller(request.object.as_ref()?)?;
    Some(InjectionEvent {
        regarding: ObjectReference {
            api_version: Some(owner.api_version),
            kind: Some(owner.kind),
            name: Some(owner.name),
            // Owners of a namespaced object live in its namespace.
            namespace: request.namespace.clone(),
            uid: Some(owner.uid),
            ..ObjectReference::default()
        },
        type_,
        reason,
        note: cut(note, MAX_NOTE_BYTES),
    })
}

/// The pod's controlling owner (`ownerReferences` with `controller: true`).
/// Owner references that do not read as such (the API server validates them
/// only after mutating admission) mean no controller.
fn controller(pod: &serde_json::Value) -> Option<OwnerReference> {
    let owners = pod.get("metadata")?.get("ownerReferences")?;
    let owners = Vec::<OwnerReference>::deserialize(owners).ok()?;
    owners.into_iter().find(|owner| {
        owner.controller == Some(true)
            && !owner.api_version.is_empty()
            && !owner.kind.is_empty()
            && !owner.name.is_empty()
            && !owner.uid.is_empty()
    })
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn cut(mut text: String, max: usize) -> String {
    const MARK: &str = "...";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

/// What happened to one Event; the `result` label of the events metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResult {
    /// The API server took it (a new Event, or a series update).
    Published,
    /// The API server refused it or did not answer in time.
    Failed,
    /// The queue was full (or the publisher gone): never sent.
    Dropped,
}

impl EventResult {
    /// Every result, so the metric shows each from zero.
    pub const ALL: [EventResult; 3] = [
        EventResult::Published,
        EventResult::Failed,
        EventResult::Dropped,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventResult::Published => "published",
            EventResult::Failed => "failed",
            EventResult::Dropped => "dropped",
        }
    }
}

/// Where the background task publishes Events: the API server through a
/// [`Recorder`], or a fake in tests.
pub trait EventSink: Send + Sync + 'static {
    /// Publishes one Event.
    fn record(
        &self,
        event: &InjectionEvent,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

impl EventSink for Recorder {
    async fn record(&self, event: &InjectionEvent) -> Result<(), kube::Error> {
        Recorder::publish(self, &event.to_kube(), &event.regarding).await
    }
}

/// The handlers' end of the Event queue. Cloning it is cheap.
#[derive(Clone, Debug)]
pub struct EventSender {
    queue: mpsc::Sender<InjectionEvent>,
    metrics: Arc<Metrics>,
}

impl EventSender {
    /// A sender whose Events `sink` publishes, one at a time and in order,
    /// from a task spawned here, with at most `capacity` waiting.
    pub fn spawn(sink: impl EventSink, capacity: usize, metrics: Arc<Metrics>) -> Self {
        let (sender, queue) = Self::channel(capacity, metrics.clone());
        tokio::spawn(publish_all(sink, queue, metrics, PUBLISH_TIMEOUT));
        sender
    }

    /// A sender and the queue it fills, for a caller that reads the queue
    /// itself (tests).
    pub fn channel(
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<InjectionEvent>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        (EventSender { queue, metrics }, receiver)
    }

    /// Queues `event` without waiting: a full queue drops it and counts it,
    /// so a slow API server never slows or fails an admission.
    pub fn send(&self, event: InjectionEvent) {
        if let Err(error) = self.queue.try_send(event) {
            self.metrics.event(EventResult::Dropped);
            // Debug only: under a burst this fires per pod; the metric is the signal.
            tracing::debug!(%error, "event dropped");
        }
    }
}

/// Publishes queued Events until every sender is gone, giving each publish
/// `timeout`.
async fn publish_all(
    sink: impl EventSink,
    mut queue: mpsc::Receiver<InjectionEvent>,
    metrics: Arc<Metrics>,
    timeout: Duration,
) {
    while let Some(event) = queue.recv().await {
        let regarding = &event.regarding;
        let result = tokio::time::timeout(timeout, sink.record(&event)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {timeout:?}")),
        };
        match failure {
            None => metrics.event(EventResult::Published),
            Some(error) => {
                metrics.event(EventResult::Failed);
                tracing::warn!(
                    %error,
                    reason = event.reason,
                    namespace = regarding.namespace.as_deref().unwrap_or_default(),
                    kind = regarding.kind.as_deref().unwrap_or_default(),
                    name = regarding.name.as_deref().unwrap_or_default(),
                    "cannot publish event"
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
