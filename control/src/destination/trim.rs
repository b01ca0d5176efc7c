//! What each reflector caches of an object: only the fields the index
//! reads. The stores hold every Pod, Service and EndpointSlice of the
//! cluster, and managed fields, `kubectl apply`'s copy, statuses, topology
//! and most of each container are the bulk of those objects. Each trim is
//! checked to leave its summary ([`PodInfo`], [`ServiceInfo`],
//! [`SliceInfo`]) unchanged.
//!
//! [`PodInfo`]: super::endpoint::PodInfo
//! [`ServiceInfo`]: super::service::ServiceInfo
//! [`SliceInfo`]: super::slice::SliceInfo

use k8s_openapi::api::core::v1::{Container, Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt as _;

use super::slice::SERVICE_NAME_LABEL;

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what destination never reads from a cached Pod: the cache holds
/// every pod of the cluster, and managed fields, `kubectl apply`'s copy,
/// conditions, container statuses, volumes and most of each container are
/// the bulk of a Pod's size.
pub(crate) fn trim_pod(pod: &mut Pod) {
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

/// Keeps of a Service only what
/// [`ServiceInfo::from_service`](super::service::ServiceInfo::from_service)
/// reads.
pub(crate) fn trim_service(service: &mut Service) {
    service.metadata = ObjectMeta {
        name: service.metadata.name.take(),
        namespace: service.metadata.namespace.take(),
        resource_version: service.metadata.resource_version.take(),
        uid: service.metadata.uid.take(),
        ..ObjectMeta::default()
    };
    service.status = None;
    if let Some(spec) = service.spec.as_mut() {
        let ports = spec.ports.take().map(|ports| {
            ports
                .into_iter()
                .map(|port| ServicePort {
                    name: port.name,
                    port: port.port,
                    protocol: port.protocol,
                    ..ServicePort::default()
                })
                .collect()
        });
        *spec = ServiceSpec {
            cluster_ip: spec.cluster_ip.take(),
            cluster_ips: spec.cluster_ips.take(),
            type_: spec.type_.take(),
            ports,
            ..ServiceSpec::default()
        };
    }
}

/// Keeps of an EndpointSlice only what
/// [`SliceInfo::from_slice`](super::slice::SliceInfo::from_slice) reads:
/// topology, hints and target references are most of a large slice.
pub(crate) fn trim_slice(slice: &mut EndpointSlice) {
    let service = slice
        .metadata
        .labels
        .as_mut()
        .and_then(|labels| labels.remove(SERVICE_NAME_LABEL));
    slice.metadata = ObjectMeta {
        name: slice.metadata.name.take(),
        namespace: slice.metadata.namespace.take(),
        resource_version: slice.metadata.resource_version.take(),
        uid: slice.metadata.uid.take(),
        labels: service.map(|name| [(SERVICE_NAME_LABEL.to_string(), name)].into()),
        ..ObjectMeta::default()
    };
    for endpoint in &mut slice.endpoints {
        *endpoint = Endpoint {
            addresses: std::mem::take(&mut endpoint.addresses),
            conditions: endpoint.conditions.take().map(|c| EndpointConditions {
                ready: c.ready,
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        };
    }
    if let Some(ports) = slice.ports.as_mut() {
        for port in ports {
            *port = EndpointPort {
                name: port.name.take(),
                port: port.port,
                protocol: port.protocol.take(),
                ..EndpointPort::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, PodSpec, PodStatus, Volume};

    use super::*;
    use crate::destination::endpoint::PodInfo;
    use crate::destination::service::ServiceInfo;
    use crate::destination::slice::SliceInfo;

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

    #[test]
    fn trimming_a_service_keeps_its_cluster_ips_and_ports() {
        use k8s_openapi::api::core::v1::ServiceStatus;
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

        let mut service = Service {
            metadata: ObjectMeta {
                name: Some("web-svc".to_string()),
                namespace: Some("shop".to_string()),
                annotations: Some([(LAST_APPLIED.to_string(), "{...}".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".to_string()),
                cluster_ips: Some(vec!["10.96.0.10".to_string(), "fd00::10".to_string()]),
                type_: Some("NodePort".to_string()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_string()),
                    port: 80,
                    protocol: Some("TCP".to_string()),
                    node_port: Some(30080),
                    target_port: Some(IntOrString::String("http".to_string())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus::default()),
        };
        let before = ServiceInfo::from_service(&service);
        assert!(before.as_ref().is_some_and(|s| s.cluster_ips.len() == 2));
        trim_service(&mut service);
        assert_eq!(ServiceInfo::from_service(&service), before);
        let spec = service.spec.as_ref().expect("spec kept");
        assert_eq!(
            (spec.selector.as_ref(), service.status.as_ref()),
            (None, None)
        );
        assert_eq!(spec.ports.as_ref().map(|p| p[0].node_port), Some(None));
        assert!(service.metadata.annotations.is_none());
    }

    #[test]
    fn trimming_a_slice_keeps_its_service_ports_and_ready_addresses() {
        use k8s_openapi::api::core::v1::ObjectReference;

        let mut slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-svc-x1".to_string()),
                namespace: Some("shop".to_string()),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), "web-svc".to_string()),
                        (
                            "endpointslice.kubernetes.io/managed-by".to_string(),
                            "x".to_string(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".to_string(),
            endpoints: vec![
                Endpoint {
                    addresses: vec!["10.0.0.5".to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    node_name: Some("node-1".to_string()),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".to_string()),
                        name: Some("web-1".to_string()),
                        ..ObjectReference::default()
                    }),
                    zone: Some("z1".to_string()),
                    ..Endpoint::default()
                },
                Endpoint {
                    addresses: vec!["10.0.0.6".to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(false),
                        ..EndpointConditions::default()
                    }),
                    ..Endpoint::default()
                },
            ],
            ports: Some(vec![EndpointPort {
                name: Some("http".to_string()),
                port: Some(8080),
                protocol: Some("TCP".to_string()),
                app_protocol: Some("http".to_string()),
            }]),
        };
        let before = SliceInfo::from_slice(&slice);
        assert!(before.as_ref().is_some_and(|s| s.addresses.len() == 1));
        trim_slice(&mut slice);
        assert_eq!(SliceInfo::from_slice(&slice), before);
        assert_eq!(slice.endpoints[0].target_ref, None);
        assert_eq!(slice.endpoints[0].node_name, None);
        assert_eq!(slice.metadata.labels.as_ref().map(|l| l.len()), Some(1));
    }
}
