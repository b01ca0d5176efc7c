//! The watches that keep the [`Cache`] current: kube-rs reflectors over
//! Pods, Services and EndpointSlices, and metadata-only reflectors over
//! Namespaces (port annotations), ReplicaSets and Jobs (their controllers,
//! for the workload label). Each object is trimmed to what the index reads
//! (`trim`) before the reflector caches it.
//!
//! One task applies every event to the index in arrival order. After each
//! (re)list, objects the reflector's store no longer holds are dropped from
//! the index: they were deleted while the watch was down. The cache turns
//! ready once all six have listed once; before that an absent pod or
//! Service could just be one not read yet, so the API answers 503 instead
//! of "unmeshed".

use std::collections::HashSet;
use std::fmt::Debug;

use futures::stream::{self, BoxStream};
use futures::{StreamExt as _, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector::Lookup};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::cache::Cache;
use super::endpoint::{PodInfo, PodKey, PortAnnotations};
use super::index::{Changed, Index};
use super::service::{MAX_SERVICE_ENDPOINTS, ServiceInfo, ServiceKey};
use super::slice::{SliceInfo, SliceKey};
use super::trim::{trim_pod, trim_service, trim_slice};
use super::workload::{Controller, ParentKey, ParentKind};

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
    ServiceApplied(Box<ServiceInfo>),
    ServiceDeleted(ServiceKey),
    ServicesListed(HashSet<ServiceKey>),
    SliceApplied(Box<SliceInfo>),
    SliceDeleted(SliceKey),
    SlicesListed(HashSet<SliceKey>),
}

/// Which watch an update came from, to know when all have listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    Pods,
    Namespaces,
    Parents(ParentKind),
    Services,
    Slices,
}

const SOURCES: usize = 6;

impl Update {
    fn listed(&self) -> Option<Source> {
        match self {
            Update::PodsListed(_) => Some(Source::Pods),
            Update::NamespacesListed(_) => Some(Source::Namespaces),
            Update::ParentsListed(kind, _) => Some(Source::Parents(*kind)),
            Update::ServicesListed(_) => Some(Source::Services),
            Update::SlicesListed(_) => Some(Source::Slices),
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
        parent_updates::<Job>(client.clone(), ParentKind::Job),
        service_updates(client.clone()),
        slice_updates(client),
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
                let services = cache.services();
                tracing::info!(pods, endpoints, services, "destination caches synced");
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
        Update::ServiceApplied(info) => {
            let key = info.key.clone();
            cache.update(|index| {
                let changed = index.apply_service(*info);
                warn_if_cut(index, &key, &changed);
                changed
            });
        }
        Update::ServiceDeleted(key) => cache.update(|index| index.delete_service(&key)),
        Update::ServicesListed(keep) => {
            cache.update(|index| index.retain_services(|k| keep.contains(k)));
        }
        Update::SliceApplied(info) => {
            let service = info.service.clone();
            cache.update(|index| {
                let changed = index.apply_slice(*info);
                warn_if_cut(index, &service, &changed);
                changed
            });
        }
        Update::SliceDeleted(key) => cache.update(|index| index.delete_slice(&key)),
        Update::SlicesListed(keep) => {
            cache.update(|index| index.retain_slices(|k| keep.contains(k)));
        }
    }
}

/// Says so when a Service that just changed has more ready endpoints on a
/// port than an answer carries: its clients reach only some of them.
fn warn_if_cut(index: &Index, service: &ServiceKey, changed: &Changed) {
    // Nothing changed, or nothing answers for the Service (no ClusterIP).
    if changed.is_empty() {
        return;
    }
    let cut = index.service_cut(service);
    if cut > 0 {
        tracing::warn!(
            namespace = %service.namespace,
            service = %service.name,
            cut,
            max = MAX_SERVICE_ENDPOINTS,
            "a service has more ready endpoints on a port than an answer carries; answering with the lowest addresses"
        );
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

fn service_updates(client: Client) -> BoxStream<'static, Update> {
    let (store, writer) = reflector::store::<Service>();
    watcher::watcher(Api::<Service>::all(client), watcher::Config::default())
        .modify(trim_service)
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            let update = log_error("service", event).and_then(|event| match event {
                Event::Apply(service) | Event::InitApply(service) => {
                    ServiceInfo::from_service(&service)
                        .map(|info| Update::ServiceApplied(Box::new(info)))
                }
                Event::Delete(service) => {
                    service_key(&service.metadata).map(Update::ServiceDeleted)
                }
                Event::Init => None,
                Event::InitDone => Some(Update::ServicesListed(keys(&store, |s| {
                    service_key(&s.metadata)
                }))),
            });
            future::ready(update)
        })
        .boxed()
}

fn service_key(meta: &ObjectMeta) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    })
}

fn slice_updates(client: Client) -> BoxStream<'static, Update> {
    let (store, writer) = reflector::store::<EndpointSlice>();
    watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .modify(trim_slice)
    .default_backoff()
    .reflect(writer)
    .filter_map(move |event| {
        let update = log_error("endpointslice", event).and_then(|event| match event {
            // A slice that no longer counts (its Service label removed)
            // may have counted before: forget it.
            Event::Apply(slice) | Event::InitApply(slice) => match SliceInfo::from_slice(&slice) {
                Some(info) => Some(Update::SliceApplied(Box::new(info))),
                None => slice_key(&slice.metadata).map(Update::SliceDeleted),
            },
            Event::Delete(slice) => slice_key(&slice.metadata).map(Update::SliceDeleted),
            Event::Init => None,
            Event::InitDone => Some(Update::SlicesListed(keys(&store, |s| {
                slice_key(&s.metadata)
            }))),
        });
        future::ready(update)
    })
    .boxed()
}

fn slice_key(meta: &ObjectMeta) -> Option<SliceKey> {
    Some(SliceKey {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    })
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
