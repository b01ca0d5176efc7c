//! Where the webhook reads a namespace's annotations from.
//!
//! In a cluster: a watch cache of Namespace metadata (a kube-rs reflector),
//! so a review costs a map lookup, not an API call. A namespace created an
//! instant before its first pod may not be in the cache yet; that miss gets
//! one direct GET with a short timeout, and when even that does not answer,
//! the namespace counts as having no annotations (the pod is then not
//! injected unless it opts in itself) and a log line says so. Tests and
//! benchmarks use the static map instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

/// How long a cache miss may wait for the API server before the namespace
/// is treated as unknown: the whole review must fit in the API server's
/// webhook timeout.
pub const DEFAULT_MISS_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a namespace's annotations came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LookupSource {
    /// The watch cache (or the static map) had it.
    Cache,
    /// A cache miss answered by a direct GET.
    Api,
    /// Nobody knew it (or the GET failed): treated as no annotations.
    Unknown,
}

impl LookupSource {
    /// The metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupSource::Cache => "cache",
            LookupSource::Api => "api",
            LookupSource::Unknown => "unknown",
        }
    }
}

/// A namespace's annotations and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceAnnotations {
    /// The annotations; empty when the namespace is unknown.
    pub annotations: BTreeMap<String, String>,
    /// Where they came from.
    pub source: LookupSource,
}

impl NamespaceAnnotations {
    fn from(source: LookupSource, annotations: BTreeMap<String, String>) -> Self {
        NamespaceAnnotations {
            annotations,
            source,
        }
    }
}

/// The annotations of a namespace, by name.
pub trait NamespaceLookup: Send + Sync + 'static {
    /// The annotations of `namespace`; never fails, an unknown namespace has none.
    fn annotations<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, NamespaceAnnotations>;

    /// Whether the lookup has its full picture (the watch cache has synced).
    fn is_ready(&self) -> bool;
}

/// A fixed set of namespaces, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct StaticNamespaces {
    namespaces: HashMap<String, BTreeMap<String, String>>,
    ready: AtomicBool,
}

impl StaticNamespaces {
    /// A lookup that knows exactly `namespaces` and is ready.
    pub fn new(namespaces: HashMap<String, BTreeMap<String, String>>) -> Self {
        StaticNamespaces {
            namespaces,
            ready: AtomicBool::new(true),
        }
    }

    /// Flips readiness, to test what the server does before a cache syncs.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

impl NamespaceLookup for StaticNamespaces {
    fn annotations<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, NamespaceAnnotations> {
        let found = match self.namespaces.get(namespace) {
            Some(annotations) => {
                NamespaceAnnotations::from(LookupSource::Cache, annotations.clone())
            }
            None => NamespaceAnnotations::from(LookupSource::Unknown, BTreeMap::new()),
        };
        Box::pin(std::future::ready(found))
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// A Namespace's metadata only: the API server answers metadata-only
/// requests for it, which keeps the cache small.
type NamespaceMeta = PartialObjectMeta<Namespace>;

/// Namespace annotations from a watch cache of the cluster's Namespaces.
#[derive(Clone)]
pub struct KubeNamespaces {
    store: Store<NamespaceMeta>,
    api: Api<NamespaceMeta>,
    ready: Arc<AtomicBool>,
    miss_timeout: Duration,
}

impl std::fmt::Debug for KubeNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNamespaces")
            .field("cached", &self.store.state().len())
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .field("miss_timeout", &self.miss_timeout)
            .finish()
    }
}

impl KubeNamespaces {
    /// Starts watching Namespaces (metadata only) on the current tokio
    /// runtime; the lookup becomes ready after the first full list.
    pub fn spawn(client: Client, miss_timeout: Duration) -> Self {
        let api = Api::<NamespaceMeta>::all(client);
        let (store, writer) = reflector::store();
        let ready = Arc::new(AtomicBool::new(false));

        let events = watcher::watcher(api.clone(), watcher::Config::default())
            // Managed fields are most of a namespace's metadata and never read here.
            .modify(|ns| ns.managed_fields_mut().clear())
            .default_backoff()
            .reflect(writer);
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                // The backoff retries; each failed attempt is worth a line.
                if let Err(error) = event {
                    tracing::warn!(%error, "namespace watch failed; retrying");
                }
            }
            tracing::error!("namespace watch ended");
        });

        let synced = store.clone();
        let flag = ready.clone();
        tokio::spawn(async move {
            match synced.wait_until_ready().await {
                Ok(()) => {
                    flag.store(true, Ordering::Release);
                    tracing::info!(namespaces = synced.state().len(), "namespace cache synced");
                }
                Err(error) => tracing::error!(%error, "namespace cache never synced"),
            }
        });

        KubeNamespaces {
            store,
            api,
            ready,
            miss_timeout,
        }
    }

    async fn lookup(&self, namespace: &str) -> NamespaceAnnotations {
        if let Some(ns) = self.store.get(&ObjectRef::new(namespace)) {
            return NamespaceAnnotations::from(LookupSource::Cache, ns.annotations().clone());
        }
        match tokio::time::timeout(self.miss_timeout, self.api.get_opt(namespace)).await {
            Ok(Ok(Some(ns))) => {
                tracing::debug!(namespace, "namespace not cached yet; read it from the API");
                NamespaceAnnotations::from(LookupSource::Api, ns.annotations().clone())
            }
            Ok(Ok(None)) => {
                tracing::warn!(namespace, "namespace not found; treating it as unannotated");
                NamespaceAnnotations::from(LookupSource::Unknown, BTreeMap::new())
            }
            Ok(Err(error)) => {
                tracing::warn!(namespace, %error, "cannot read namespace; treating it as unannotated");
                NamespaceAnnotations::from(LookupSource::Unknown, BTreeMap::new())
            }
            Err(_) => {
                tracing::warn!(
                    namespace,
                    timeout = ?self.miss_timeout,
                    "namespace read timed out; treating it as unannotated"
                );
                NamespaceAnnotations::from(LookupSource::Unknown, BTreeMap::new())
            }
        }
    }
}

impl NamespaceLookup for KubeNamespaces {
    fn annotations<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, NamespaceAnnotations> {
        Box::pin(self.lookup(namespace))
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_lookup_knows_its_namespaces_only() {
        let annotated = BTreeMap::from([("weft.dev/inject".to_owned(), "enabled".to_owned())]);
        let lookup =
            StaticNamespaces::new(HashMap::from([("emojivoto".to_owned(), annotated.clone())]));
        assert!(lookup.is_ready());
        assert_eq!(
            lookup.annotations("emojivoto").await,
            NamespaceAnnotations::from(LookupSource::Cache, annotated)
        );
        assert_eq!(
            lookup.annotations("other").await,
            NamespaceAnnotations::from(LookupSource::Unknown, BTreeMap::new())
        );
        lookup.set_ready(false);
        assert!(!lookup.is_ready());
    }
}
