//! Which Kubernetes objects carry a pod, and where: the kind dispatch of
//! `weft inject`. Everything that is not listed here passes through unchanged.

use serde_yaml::Value;

/// What a document is, as far as injection is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// An object that holds a pod (itself, or a pod template).
    Workload(Workload<'a>),
    /// A `List` (or `DeploymentList`, ...) whose `items` are handled one by one.
    List,
    /// A `Namespace`: its annotations carry namespace-wide overrides.
    Namespace,
    /// Anything else: copied to the output as it is.
    Other,
}

/// An object that holds a pod, and where that pod lives inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload<'a> {
    /// The object's `kind`, as written (`Deployment`).
    pub kind: &'a str,
    /// JSON pointer from the object's root to the pod (`""` for a Pod).
    pub pod_pointer: &'static str,
}

/// Classifies a document by its `apiVersion` and `kind`. The API group is
/// checked too, so a custom resource that happens to be called `Job` is not
/// mistaken for a `batch` Job with a different shape.
pub fn classify(document: &Value) -> Kind<'_> {
    let Some(kind) = document.get("kind").and_then(Value::as_str) else {
        return Kind::Other;
    };
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `apps/v1` -> `apps`; the core group (`v1`) has no slash and no name.
    let group = api_version
        .split_once('/')
        .map_or("", |(group, _version)| group);
    let pod_pointer = match (group, kind) {
        ("", "Pod") => "",
        ("", "ReplicationController")
        | ("apps" | "extensions", "Deployment" | "DaemonSet" | "ReplicaSet")
        | ("apps", "StatefulSet")
        | ("batch", "Job") => "/spec/template",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template",
        ("", "Namespace") => return Kind::Namespace,
        _ if kind.ends_with("List") && document.get("items").is_some_and(Value::is_sequence) => {
            return Kind::List;
        }
        _ => return Kind::Other,
    };
    Kind::Workload(Workload { kind, pod_pointer })
}

/// The object's `metadata.<field>` when it is a string.
pub fn metadata_str<'a>(document: &'a Value, field: &str) -> Option<&'a str> {
    document
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// The name a report uses for an object: its name, else `<generateName>*`
/// (what the API server will complete), else `<unnamed>`.
pub fn display_name(document: &Value) -> String {
    if let Some(name) = metadata_str(document, "name") {
        name.to_owned()
    } else if let Some(prefix) = metadata_str(document, "generateName") {
        format!("{prefix}*")
    } else {
        "<unnamed>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Value {
        serde_yaml::from_str(yaml).expect("valid test YAML")
    }

    fn pointer(yaml: &str) -> Option<&'static str> {
        match classify(&doc(yaml)) {
            Kind::Workload(w) => Some(w.pod_pointer),
            _ => None,
        }
    }

    #[test]
    fn workloads_and_where_their_pod_is() {
        assert_eq!(pointer("apiVersion: v1\nkind: Pod"), Some(""));
        for kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"] {
            assert_eq!(
                pointer(&format!("apiVersion: apps/v1\nkind: {kind}")),
                Some("/spec/template"),
                "{kind}"
            );
        }
        assert_eq!(
            pointer("apiVersion: batch/v1\nkind: Job"),
            Some("/spec/template")
        );
        assert_eq!(
            pointer("apiVersion: batch/v1\nkind: CronJob"),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(
            pointer("apiVersion: v1\nkind: ReplicationController"),
            Some("/spec/template")
        );
    }

    #[test]
    fn same_kind_in_another_group_passes_through() {
        assert_eq!(
            classify(&doc("apiVersion: batch.volcano.sh/v1alpha1\nkind: Job")),
            Kind::Other
        );
        assert_eq!(
            classify(&doc("apiVersion: example.com/v1\nkind: Pod")),
            Kind::Other
        );
        assert_eq!(classify(&doc("kind: Deployment")), Kind::Other);
    }

    #[test]
    fn lists_namespaces_and_everything_else() {
        assert_eq!(
            classify(&doc("apiVersion: v1\nkind: List\nitems: []")),
            Kind::List
        );
        assert_eq!(
            classify(&doc("apiVersion: apps/v1\nkind: DeploymentList\nitems: []")),
            Kind::List
        );
        // A `*List` kind without items is some other resource.
        assert_eq!(
            classify(&doc(
                "apiVersion: example.com/v1\nkind: AllowList\nspec: {}"
            )),
            Kind::Other
        );
        assert_eq!(
            classify(&doc("apiVersion: v1\nkind: Namespace")),
            Kind::Namespace
        );
        assert_eq!(classify(&doc("apiVersion: v1\nkind: Service")), Kind::Other);
        assert_eq!(classify(&Value::Null), Kind::Other);
        assert_eq!(classify(&doc("[1, 2]")), Kind::Other);
        assert_eq!(classify(&doc("kind: 7")), Kind::Other);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(&doc("metadata: {name: web}")), "web");
        assert_eq!(
            display_name(&doc("metadata: {generateName: web-}")),
            "web-*"
        );
        assert_eq!(display_name(&doc("metadata: {}")), "<unnamed>");
        assert_eq!(display_name(&doc("kind: Pod")), "<unnamed>");
    }
}
