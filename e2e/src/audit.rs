//! The API server's audit log: the policy the local cluster runs with, and a
//! reader that finds the events of one object, so a test can see what an
//! admission webhook reported (its `auditAnnotations` and, at `Request`
//! level, the patch it applied).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The audit policy: pod writes at `Request` level (which includes the
/// webhook patch annotations), other writes at `Metadata`, and reads,
/// leases and events not at all, which keeps the log small.
pub const POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
      - group: ''
        resources: [events]
  - level: Request
    resources:
      - group: ''
        resources: [pods]
  - level: Metadata
";

/// One audit event, with the fields the suites read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `ResponseComplete`, `Panic`, ...
    pub stage: String,
    /// `create`, `update`, ...
    pub verb: String,
    /// The object the request was about.
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    /// Annotations added by the API server and by admission webhooks
    /// (`<webhook name>/<key>`).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The HTTP status the request ended with.
    #[serde(default)]
    pub response_status: Option<serde_json::Value>,
    /// The object as the client sent it (at `Request` level): for a
    /// create, the object before any admission webhook changed it.
    #[serde(default)]
    pub request_object: Option<serde_json::Value>,
}

impl AuditEvent {
    /// The HTTP status code the request ended with, when recorded.
    pub fn status_code(&self) -> Option<u64> {
        self.response_status.as_ref()?.get("code")?.as_u64()
    }
}

/// The object of an audit event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `pods`, `namespaces`, ...
    #[serde(default)]
    pub resource: String,
    /// The namespace, for namespaced objects.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The name (empty for `generateName` creations until named).
    #[serde(default)]
    pub name: Option<String>,
}

/// Every complete event in the audit log at `path` about `resource`
/// `namespace/name`. Lines that do not parse (a line being written) are
/// skipped.
pub fn events_for(
    path: &Path,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Result<Vec<AuditEvent>> {
    Ok(events(path)?
        .into_iter()
        .filter(|event| {
            event.object_ref.as_ref().is_some_and(|o| {
                o.resource == resource
                    && o.namespace.as_deref() == Some(namespace)
                    && o.name.as_deref() == Some(name)
            })
        })
        .collect())
}

/// Every complete event in the audit log at `path`, in order. Lines that
/// do not parse (a line being written) are skipped.
pub fn events(path: &Path) -> Result<Vec<AuditEvent>> {
    let text = std::fs::read_to_string(path)
        .map_err(Error::io(format!("reading audit log {}", path.display())))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<AuditEvent>(line).ok())
        .filter(|event| event.stage == "ResponseComplete")
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_valid_yaml() {
        let policy: serde_yaml::Value = serde_yaml::from_str(POLICY).expect("yaml");
        assert_eq!(policy["kind"], "Policy");
        assert_eq!(policy["rules"].as_sequence().map(Vec::len), Some(4));
    }

    #[test]
    fn finds_the_events_of_one_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let lines = [
            r#"{"stage":"ResponseComplete","verb":"create","objectRef":{"resource":"pods","namespace":"a","name":"p"},"annotations":{"inject.weft.dev/injected":"true"}}"#,
            r#"{"stage":"ResponseComplete","verb":"create","objectRef":{"resource":"pods","namespace":"b","name":"p"}}"#,
            r#"{"stage":"ResponseStarted","verb":"create","objectRef":{"resource":"pods","namespace":"a","name":"p"}}"#,
            r#"{"stage":"Respon"#,
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        let events = events_for(&path, "pods", "a", "p").expect("read");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].annotations["inject.weft.dev/injected"], "true");
    }

    #[test]
    fn keeps_the_request_object_and_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let line = r#"{"stage":"ResponseComplete","verb":"create","objectRef":{"resource":"pods","namespace":"a"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Pod","metadata":{"generateName":"web-"}}}"#;
        std::fs::write(&path, line).expect("write");
        let events = events(&path).expect("read");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status_code(), Some(201));
        let object = events[0].request_object.as_ref().expect("request object");
        assert_eq!(object["metadata"]["generateName"], "web-");
    }
}
