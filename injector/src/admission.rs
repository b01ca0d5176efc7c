//! The `admission.k8s.io/v1` AdmissionReview as it travels on the wire, and
//! the pure step that turns one review request into its response.
//!
//! The types are our own and deliberately minimal: only the fields the
//! webhook reads or writes. The patch is carried as a base64 *string* we
//! encode ourselves, so it can never be serialized as a JSON array of numbers
//! (what a `Vec<u8>` field would produce). Reading the namespace's
//! annotations (I/O) is left to the caller, which keeps [`review`] pure.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Decision, InjectorConfig};

/// The only AdmissionReview version the webhook speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The kind of both the request and the response envelope.
pub const KIND: &str = "AdmissionReview";
/// The largest request body the webhook reads (the API server's own request
/// limit is 3 MiB, so a larger body is not from the API server).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Every warning we add about a pod we could not read starts with this.
pub const POD_NOT_INJECTED: &str = "weft: pod not injected";

/// The envelope the API server POSTs; every field is optional here so a
/// malformed review becomes a [`BadRequest`] with a precise message rather
/// than a generic deserialization error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewEnvelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RawRequest>,
}

/// The request before we checked that it has a uid.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    uid: Option<String>,
    #[serde(default)]
    kind: GroupVersionKind,
    #[serde(default)]
    resource: GroupVersionResource,
    sub_resource: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    operation: Option<String>,
    object: Option<serde_json::Value>,
    dry_run: Option<bool>,
}

/// `request.kind`: the kind of the object under review.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version within the group.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `Pod`.
    #[serde(default)]
    pub kind: String,
}

/// `request.resource`: the resource the request was made to.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct GroupVersionResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version within the group.
    #[serde(default)]
    pub version: String,
    /// Resource, e.g. `pods`.
    #[serde(default)]
    pub resource: String,
}

/// One admission request, validated enough to be answered.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionRequest {
    /// Echoed in the response so the API server can match it.
    pub uid: String,
    /// The kind of the object.
    pub kind: GroupVersionKind,
    /// The resource the request was made to.
    pub resource: GroupVersionResource,
    /// A subresource (`status`, `ephemeralcontainers`, ...), if any.
    pub sub_resource: Option<String>,
    /// The object's name; often empty on CREATE (`generateName`).
    pub name: Option<String>,
    /// The namespace the object is created in.
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: Option<String>,
    /// The object as the API server sends it.
    pub object: Option<serde_json::Value>,
    /// Whether the request is a dry run (`kubectl apply --dry-run=server`).
    pub dry_run: bool,
}

impl AdmissionRequest {
    /// Whether this request is a Pod itself (not a subresource of one), the
    /// only object the injector plans.
    pub fn is_pod(&self) -> bool {
        self.resource.group.is_empty()
            && self.resource.resource == "pods"
            && self.kind.kind == "Pod"
            && self.sub_resource.as_deref().is_none_or(str::is_empty)
    }

    /// Whether the operation is one the injector acts on. A missing
    /// operation counts as `CREATE`, the only one the webhook is registered for.
    pub fn is_create(&self) -> bool {
        self.operation.as_deref().is_none_or(|op| op == "CREATE")
    }

    /// Whether [`review`] will need the namespace's annotations.
    pub fn needs_namespace(&self) -> bool {
        self.is_pod() && self.is_create() && self.namespace.is_some()
    }
}

/// Why a body is not an AdmissionReview we can answer (an HTTP error, not an
/// admission response).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRequest {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The body could not be read to its end.
    #[error("cannot read the request body: {0}")]
    Unreadable(String),
    /// The body is not JSON, or its fields have the wrong types.
    #[error("request body is not a valid AdmissionReview JSON document: {0}")]
    NotJson(String),
    /// The envelope names another API version or kind.
    #[error(
        "expected apiVersion {API_VERSION} and kind {KIND}, got apiVersion {api_version:?} and kind {kind:?}"
    )]
    NotAdmissionReview {
        /// The apiVersion the body carried.
        api_version: Option<String>,
        /// The kind the body carried.
        kind: Option<String>,
    },
    /// The review has no `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// The request has no `uid` (or an empty one).
    #[error("the AdmissionReview request has no uid")]
    MissingUid,
}

impl BadRequest {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            BadRequest::TooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The outcome this error is counted under.
    pub fn outcome(&self) -> Outcome {
        match self {
            BadRequest::TooLarge { .. } => Outcome::TooLarge,
            _ => Outcome::BadRequest,
        }
    }
}

/// Reads an AdmissionReview request from a request body (whose size the
/// server has already bounded).
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, BadRequest> {
    let envelope: ReviewEnvelope =
        serde_json::from_slice(body).map_err(|e| BadRequest::NotJson(e.to_string()))?;
    if envelope.api_version.as_deref() != Some(API_VERSION)
        || envelope.kind.as_deref() != Some(KIND)
    {
        return Err(BadRequest::NotAdmissionReview {
            api_version: envelope.api_version,
            kind: envelope.kind,
        });
    }
    let raw = envelope.request.ok_or(BadRequest::MissingRequest)?;
    let uid = raw
        .uid
        .filter(|uid| !uid.is_empty())
        .ok_or(BadRequest::MissingUid)?;
    Ok(AdmissionRequest {
        uid,
        kind: raw.kind,
        resource: raw.resource,
        sub_resource: raw.sub_resource,
        name: raw.name,
        namespace: raw.namespace,
        operation: raw.operation,
        object: raw.object,
        dry_run: raw.dry_run.unwrap_or(false),
    })
}

/// What happened to one review; the `outcome` label of the reviews metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A pod was injected (the response carries a patch).
    Injected,
    /// A pod was left unchanged by the policy.
    Skipped,
    /// Not a pod: allowed unchanged.
    AllowedOtherKind,
    /// A pod, but not a CREATE: allowed unchanged.
    AllowedOtherOperation,
    /// A pod that does not parse: allowed unchanged, with a warning.
    InvalidPod,
    /// Not an AdmissionReview we can answer: HTTP 400.
    BadRequest,
    /// A body over the limit: HTTP 413.
    TooLarge,
}

impl Outcome {
    /// Every outcome, so metrics can show each one from zero.
    pub const ALL: [Outcome; 7] = [
        Outcome::Injected,
        Outcome::Skipped,
        Outcome::AllowedOtherKind,
        Outcome::AllowedOtherOperation,
        Outcome::InvalidPod,
        Outcome::BadRequest,
        Outcome::TooLarge,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Injected => "injected",
            Outcome::Skipped => "skipped",
            Outcome::AllowedOtherKind => "allowed_other_kind",
            Outcome::AllowedOtherOperation => "allowed_other_operation",
            Outcome::InvalidPod => "invalid_pod",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
        }
    }
}

/// The response envelope sent back to the API server.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// Always [`API_VERSION`].
    pub api_version: &'static str,
    /// Always [`KIND`].
    pub kind: &'static str,
    /// The answer.
    pub response: AdmissionResponse,
}

/// `response` of an AdmissionReview.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid, echoed.
    pub uid: String,
    /// The injector never refuses a pod: a pod it cannot inject is created as is.
    pub allowed: bool,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Standard, padded base64 of the JSON patch text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Shown by `kubectl` to the user who created the pod.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Written to the API server's audit log (prefixed with the webhook's name).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

impl AdmissionResponse {
    /// An answer that lets the object through unchanged.
    fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }
}

/// A review's answer and how it is counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Reviewed {
    /// The document to send back.
    pub review: AdmissionReview,
    /// The metrics outcome.
    pub outcome: Outcome,
    /// The planner's decision, when a pod was planned.
    pub decision: Option<Decision>,
}

/// Answers one admission request. `namespace_annotations` are the
/// annotations of `request.namespace` (empty when the namespace is unknown).
pub fn review(
    request: &AdmissionRequest,
    namespace_annotations: &BTreeMap<String, String>,
    config: &InjectorConfig,
) -> Reviewed {
    let mut response = AdmissionResponse::allow(&request.uid);
    let done = |response, outcome, decision| Reviewed {
        review: AdmissionReview {
            api_version: API_VERSION,
            kind: KIND,
            response,
        },
        outcome,
        decision,
    };

    if !request.is_pod() {
        return done(response, Outcome::AllowedOtherKind, None);
    }
    if !request.is_create() {
        return done(response, Outcome::AllowedOtherOperation, None);
    }
    let (Some(namespace), Some(pod)) = (request.namespace.as_deref(), request.object.as_ref())
    else {
        response.warnings.push(format!(
            "{POD_NOT_INJECTED}: the admission request carries no namespace or no object"
        ));
        return done(response, Outcome::InvalidPod, None);
    };

    let plan = match crate::plan(pod, namespace, namespace_annotations, config) {
        Ok(plan) => plan,
        Err(error) => {
            response
                .warnings
                .push(format!("{POD_NOT_INJECTED}: {error}"));
            return done(response, Outcome::InvalidPod, None);
        }
    };

    response.warnings = plan.warnings;
    response.audit_annotations = plan.audit;
    let outcome = match plan.decision {
        Decision::Inject { .. } => Outcome::Injected,
        Decision::Skip(_) => Outcome::Skipped,
    };
    if !plan.patch.0.is_empty() {
        match serde_json::to_vec(&plan.patch) {
            Ok(text) => {
                response.patch_type = Some("JSONPatch");
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(text));
            }
            // A patch of plain JSON values always serializes; should it ever
            // fail, the pod is still created, uninjected, and the user told.
            Err(error) => {
                response.warnings.push(format!(
                    "{POD_NOT_INJECTED}: cannot encode the patch: {error}"
                ));
                return done(response, Outcome::InvalidPod, Some(plan.decision));
            }
        }
    }
    done(response, outcome, Some(plan.decision))
}

#[cfg(test)]
mod tests;
