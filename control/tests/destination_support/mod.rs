//! Shared pieces of the destination suites: the API served on a loopback
//! port, a small HTTP client that reads `/v1/watch` line by line, and Pods,
//! Services and EndpointSlices built the way the API server would send
//! them.

#![allow(dead_code)] // each suite uses its own subset of the helpers

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::StatusCode;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodIP, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use weft_control::destination::{self, DestinationState};

/// How long a test waits for one line of a watch.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// The destination API served over plain TCP on `127.0.0.1:0`.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `state` until [`Server::stop`] or drop.
    pub async fn start(state: DestinationState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(destination::serve(listener, state, async move {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops it (ending open watches) and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let finished = tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops within 10 s");
        finished.expect("server task").expect("server result");
    }

    /// A client for it.
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }
}

/// A plain HTTP/1 client of one destination server.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Empty<Bytes>>,
    base: String,
}

/// A response with a JSON body.
#[derive(Debug)]
pub struct JsonResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, parsed.
    pub body: Value,
}

impl Client {
    /// A client of the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    async fn send(&self, path_and_query: &str) -> hyper::Response<Incoming> {
        let request = hyper::Request::get(format!("{}{path_and_query}", self.base))
            .body(Empty::new())
            .expect("request");
        self.http.request(request).await.expect("response")
    }

    /// `GET path_and_query`, with the body read and parsed as JSON.
    pub async fn get(&self, path_and_query: &str) -> JsonResponse {
        let response = self.send(path_and_query).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{path_and_query}: body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        JsonResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET /v1/resolve?addr=ADDR`, expecting 200.
    pub async fn resolve(&self, addr: &str) -> Value {
        let response = self.get(&format!("/v1/resolve?addr={addr}")).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{addr}: {:?}",
            response.body
        );
        response.body
    }

    /// Opens `GET /v1/watch?addr=ADDR` (or any query), without reading it.
    pub async fn watch(&self, query: &str) -> Watch {
        let response = self.send(&format!("/v1/watch?{query}")).await;
        let (parts, body) = response.into_parts();
        Watch {
            status: parts.status,
            headers: parts.headers,
            body,
            buffer: Vec::new(),
        }
    }
}

/// An open watch, read line by line.
pub struct Watch {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    body: Incoming,
    buffer: Vec<u8>,
}

impl Watch {
    /// The next line as JSON (heartbeats included), `None` when the stream
    /// ends; panics after `timeout`.
    pub async fn line_within(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next_line())
            .await
            .unwrap_or_else(|_| panic!("no watch line within {timeout:?}"))
    }

    /// The next line, with the default timeout.
    pub async fn line(&mut self) -> Option<Value> {
        self.line_within(LINE_TIMEOUT).await
    }

    /// The next line that is not a `{}` heartbeat.
    pub async fn update(&mut self) -> Value {
        loop {
            match self.line().await {
                Some(Value::Object(map)) if map.is_empty() => continue,
                Some(value) => return value,
                None => panic!("the watch ended"),
            }
        }
    }

    async fn next_line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let value = serde_json::from_slice(&line[..end]).unwrap_or_else(|e| {
                    panic!(
                        "watch line is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&line)
                    )
                });
                return Some(value);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => panic!("watch body failed: {error}"),
                None => {
                    assert!(self.buffer.is_empty(), "a partial line at the end");
                    return None;
                }
            }
        }
    }
}

/// A pod in `namespace` with `ip`, service account `sa`, and a `weft-proxy`
/// container when `meshed`.
pub fn pod(namespace: &str, name: &str, ip: &str, sa: &str, meshed: bool) -> Pod {
    let mut containers = vec![Container {
        name: "app".to_string(),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_string()),
            container_port: 8080,
            ..ContainerPort::default()
        }]),
        ..Container::default()
    }];
    if meshed {
        containers.push(Container {
            name: "weft-proxy".to_string(),
            ..Container::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(sa.to_string()),
            containers,
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_string()),
            pod_ip: Some(ip.to_string()),
            pod_ips: Some(vec![PodIP { ip: ip.to_string() }]),
            ..PodStatus::default()
        }),
    }
}

/// `pod` with an annotation added.
pub fn annotated(mut pod: Pod, key: &str, value: &str) -> Pod {
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
    pod
}

/// Whether `value` is a `{}` heartbeat.
pub fn is_heartbeat(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.is_empty())
}

/// A Service `name` without a selector, port 80 named `http` to the target
/// port named `http`; on `cluster_ip`, or one the API server picks when
/// `None`.
pub fn service(namespace: &str, name: &str, cluster_ip: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.map(str::to_string),
            cluster_ips: cluster_ip.map(|ip| vec![ip.to_string()]),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: 80,
                protocol: Some("TCP".to_string()),
                target_port: Some(IntOrString::String("http".to_string())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// An IPv4 EndpointSlice `name` of Service `service`, port `http` 8080,
/// with one endpoint per `(address, ready)`.
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    endpoints: &[(&str, bool)],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [(
                    "kubernetes.io/service-name".to_string(),
                    service.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_string(),
        endpoints: endpoints
            .iter()
            .map(|(address, ready)| Endpoint {
                addresses: vec![address.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".to_string()),
            port: Some(8080),
            protocol: Some("TCP".to_string()),
            ..EndpointPort::default()
        }]),
    }
}
