//! The watches that keep the [`Cache`] current: kube-rs reflectors over
//! Pods, and metadata-only reflectors over Namespaces (port annotations),
//! ReplicaSets and Jobs (their controllers, for the workload label).
//!
//! One task applies every event to the index in arrival order. After each
//! (re)list, objects the reflector's store no longer holds are dropped from
//! the index: they were deleted while the watch was down. The cache turns
//! ready once all four have listed once; before that an absent pod could
//! just be one not read yet, so the API answers 503 instead of "unmeshed".

use std::collections::HashSet;
use std::fmt::Debug;

use futures::stream::{self, BoxStream};
use futures::{StreamExt as _, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector::Lookup};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::cache::Cache;
use super::endpoint::{PodInfo, PodKey, PortAnnotations};
use super::workload::{Controller, ParentKey, ParentKind};

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One change to what the index is built from.
#[derive(Debug)]
enum Update {
    PodApplied(Box<PodInfo>),
    PodDeleted(PodKey),
    PodsListed(HashSet<PodKey>),
    NamespaceApplied(String, PortAnnotations),
    NamespaceDeleted(String),
    NamespacesListed(HashSet<String>),
    ParentApplied(ParentKey, Option<Controller>),
    ParentDeleted(ParentKey),
    ParentsListed(ParentKind, HashSet<ParentKey>),
}

/// Which watch an update came from, to know when all have listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    Pods,
    Namespaces,
    Parents(ParentKind),
}

const SOURCES: usize = 4;

impl Update {
    fn listed(&self) -> Option<Source> {
        match self {
            Update::PodsListed(_) => Some(Source::Pods),
            Update::NamespacesListed(_) => Some(Source::Namespaces),
            Update::ParentsListed(kind, _) => Some(Source::Parents(*kind)),
            _ => None,
        }
    }
}

/// Starts the watches on the current tokio runtime, feeding `cache`; the
/// task runs as long as the runtime does.
pub fn spawn(client: Client, cache: Cache) -> tokio::task::JoinHandle<()> {
    let updates = stream::select_all([
        pod_updates(client.clone()),
        namespace_updates(client.clone()),
        parent_updates::<ReplicaSet>(client.clone(), ParentKind::ReplicaSet),
        parent_updates::<Job>(client, ParentKind::Job),
    ]);
    tokio::spawn(async move {
        let mut updates = std::pin::pin!(updates);
        let mut listed = HashSet::new();
        while let Some(update) = updates.next().await {
            let source = update.listed();
            apply(&cache, update);
            if let Some(source) = source
                && listed.insert(source)
                && listed.len() == SOURCES
            {
                cache.set_ready();
                let (pods, endpoints) = cache.size();
                tracing::info!(pods, endpoints, "destination caches synced");
            }
        }
        tracing::error!("destination watches ended");
    })
}

fn apply(cache: &Cache, update: Update) {
    match update {
        Update::PodApplied(info) => {
            let key = info.key.clone();
            cache.update(|index| {
                let changed = index.apply_pod(*info);
                if !changed.is_empty()
                    && let Some(endpoint) = index.pod_endpoint(&key)
                {
                    for problem in &endpoint.problems {
                        tracing::warn!(namespace = %key.namespace, pod = %key.name, %problem, "ignoring a malformed port annotation");
                    }
                }
                changed
            });
        }
        Update::PodDeleted(key) => cache.update(|index| index.delete_pod(&key)),
        Update::PodsListed(keep) => cache.update(|index| index.retain_pods(|k| keep.contains(k))),
        Update::NamespaceApplied(name, ports) => {
            cache.update(|index| index.apply_namespace(&name, ports));
        }
        Update::NamespaceDeleted(name) => cache.update(|index| index.delete_namespace(&name)),
        Update::NamespacesListed(keep) => {
            cache.update(|index| index.retain_namespaces(|n| keep.contains(n)));
        }
        Update::ParentApplied(key, controller) => {
            cache.update(|index| index.apply_parent(key, controller));
        }
        Update::ParentDeleted(key) => cache.update(|index| index.delete_parent(&key)),
        Update::ParentsListed(kind, keep) => {
            cache.update(|index| index.retain_parents(kind, |k| keep.contains(k)));
        }
    }
}

/// Keeps a watch event's object or error, logging errors (the backoff
/// retries them).
fn log_error<K>(what: &str, event: watcher::Result<Event<K>>) -> Option<Event<K>> {
    event
        .map_err(|error| tracing::warn!(%error, "{what} watch failed; retrying"))
        .ok()
}

fn pod_updates(client: Client) -> BoxStream<'static, Update> {
    let (store, writer) = reflector::store::<Pod>();
    watcher::watcher(Api::<Pod>::all(client), watcher::Config::default())
        .modify(trim_pod)
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            let update = log_error("pod", event).and_then(|event| match event {
                Event::Apply(pod) | Event::InitApply(pod) => {
                    PodInfo::from_pod(&pod).map(|info| Update::PodApplied(Box::new(info)))
                }
                Event::Delete(pod) => pod_key(&pod.metadata).map(Update::PodDeleted),
                Event::Init => None,
                Event::InitDone => Some(Update::PodsListed(keys(&store, |p| pod_key(&p.metadata)))),
            });
            future::ready(update)
        })
        .boxed()
}

/// Drops what destination never reads from a cached Pod: the cache holds
/// every pod of the cluster, and managed fields, `kubectl apply`'s copy,
/// conditions, container statuses, volumes and most of each container are
/// the bulk of a Pod's size.
fn trim_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.annotations_mut().remove(LAST_APPLIED);
    if let Some(status) = pod.status.as_mut() {
        status.conditions = None;
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        // Only names (to spot weft-proxy) and ports (named ports in
        // annotations) are read.
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for container in containers {
            *container = Container {
                name: std::mem::take(&mut container.name),
                ports: container.ports.take(),
                ..Container::default()
            };
        }
    }
}

fn pod_key(meta: &ObjectMeta) -> Option<PodKey> {
    Some(PodKey {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    })
}

/// The keys of everything in `store`, after a (re)list.
fn keys<K, T>(store: &Store<K>, key: impl Fn(&K) -> Option<T>) -> HashSet<T>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    T: Eq + std::hash::Hash,
{
    store.state().iter().filter_map(|o| key(o)).collect()
}

fn namespace_updates(client: Client) -> BoxStream<'static, Update> {
    let (store, writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    watcher::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client),
        watcher::Config::default(),
    )
    .modify(|ns| ns.managed_fields_mut().clear())
    .default_backoff()
    .reflect(writer)
    .filter_map(move |event| {
        let update = log_error("namespace", event).and_then(|event| match event {
            Event::Apply(ns) | Event::InitApply(ns) => {
                let ports = PortAnnotations::from_annotations(ns.metadata.annotations.as_ref());
                ns.metadata
                    .name
                    .map(|name| Update::NamespaceApplied(name, ports))
            }
            Event::Delete(ns) => ns.metadata.name.map(Update::NamespaceDeleted),
            Event::Init => None,
            Event::InitDone => Some(Update::NamespacesListed(keys(&store, |ns| {
                ns.metadata.name.clone()
            }))),
        });
        future::ready(update)
    })
    .boxed()
}

fn parent_updates<K>(client: Client, kind: ParentKind) -> BoxStream<'static, Update>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<PartialObjectMeta<K>>();
    let what = match kind {
        ParentKind::ReplicaSet => "replicaset",
        ParentKind::Job => "job",
    };
    let key = move |meta: &ObjectMeta| {
        Some(ParentKey {
            kind,
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
        })
    };
    watcher::watcher(
        Api::<PartialObjectMeta<K>>::all(client),
        watcher::Config::default(),
    )
    .modify(|object| object.managed_fields_mut().clear())
    .default_backoff()
    .reflect(writer)
    .filter_map(move |event| {
        let update = log_error(what, event).and_then(|event| match event {
            Event::Apply(object) | Event::InitApply(object) => key(&object.metadata)
                .map(|k| Update::ParentApplied(k, Controller::of(&object.metadata))),
            Event::Delete(object) => key(&object.metadata).map(Update::ParentDeleted),
            Event::Init => None,
            Event::InitDone => Some(Update::ParentsListed(
                kind,
                keys(&store, |o| key(&o.metadata)),
            )),
        });
        future::ready(update)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, PodSpec, PodStatus, Volume};

    use super::*;

    #[test]
    fn trimming_keeps_everything_the_index_reads() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-1".to_string()),
                namespace: Some("shop".to_string()),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_string(), "{...}".to_string()),
                        (
                            "config.weft.dev/opaque-ports".to_string(),
                            "grpc".to_string(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".to_string(),
                    env: Some(vec![EnvVar {
                        name: "BIG".to_string(),
                        value: Some("x".repeat(1000)),
                        value_from: None,
                    }]),
                    ports: Some(vec![ContainerPort {
                        name: Some("grpc".to_string()),
                        container_port: 9090,
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                init_containers: Some(vec![Container {
                    name: "weft-proxy".to_string(),
                    image: Some("proxy:1".to_string()),
                    ..Container::default()
                }]),
                service_account_name: Some("web".to_string()),
                volumes: Some(vec![Volume {
                    name: "data".to_string(),
                    ..Volume::default()
                }]),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.0.0.5".to_string()),
                phase: Some("Running".to_string()),
                conditions: Some(Vec::new()),
                ..PodStatus::default()
            }),
        };
        let before = PodInfo::from_pod(&pod);
        trim_pod(&mut pod);
        assert_eq!(PodInfo::from_pod(&pod), before);
        let spec = pod.spec.as_ref().expect("spec kept");
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(spec.volumes, None);
        assert!(!pod.annotations().contains_key(LAST_APPLIED));
    }
}
