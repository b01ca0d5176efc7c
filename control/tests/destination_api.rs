//! The destination API over real loopback HTTP, with the cache fed by hand
//! (the suite against a real API server is `destination_e2e.rs`): answers,
//! bad requests, readiness, watch streams with their updates and
//! heartbeats, a Service's ClusterIP answered with its endpoints, the caps
//! on open watches, and shutdown.

mod destination_support;

use std::time::Duration;

use hyper::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use serde_json::json;
use weft_control::destination::{
    Cache, Config, DestinationState, Metrics, PodInfo, PodKey, ServiceInfo, SliceInfo,
    metrics::LookupResult,
};

use destination_support::{Server, annotated, endpoint_slice, is_heartbeat, pod, service};

fn state_with(config: Config) -> (DestinationState, Metrics) {
    let metrics = Metrics::new();
    let cache = Cache::new(config.trust_domain.clone(), metrics.clone());
    (
        DestinationState::new(cache, config, metrics.clone()),
        metrics,
    )
}

fn feed(state: &DestinationState, pod: &k8s_openapi::api::core::v1::Pod) {
    let info = PodInfo::from_pod(pod).expect("named pod");
    state.cache().update(|index| index.apply_pod(info));
}

fn remove(state: &DestinationState, namespace: &str, name: &str) {
    let key = PodKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    state.cache().update(|index| index.delete_pod(&key));
}

fn ready_state(config: Config) -> (DestinationState, Metrics) {
    let (state, metrics) = state_with(config);
    state.cache().set_ready();
    (state, metrics)
}

#[tokio::test]
async fn resolves_meshed_unmeshed_and_unknown_addresses() {
    let (state, metrics) = ready_state(Config {
        trust_domain: "example.org".to_string(),
        ..Config::default()
    });
    feed(
        &state,
        &annotated(
            pod("shop", "web-1", "10.244.0.5", "web", true),
            "config.weft.dev/opaque-ports",
            "3306",
        ),
    );
    feed(
        &state,
        &pod("shop", "legacy-1", "10.244.0.6", "default", false),
    );
    let server = Server::start(state).await;
    let client = server.client();

    assert_eq!(
        client.resolve("10.244.0.5:3306").await,
        json!({
            "addr": "10.244.0.5:3306",
            "meshed": true,
            "identity": "spiffe://example.org/ns/shop/sa/web",
            "opaque": true,
            "proxy_port": 4143,
            "labels": {
                "dst_namespace": "shop",
                "dst_pod": "web-1",
                "dst_serviceaccount": "web",
            },
        })
    );
    assert_eq!(client.resolve("10.244.0.5:8080").await["opaque"], false);
    assert_eq!(
        client.resolve("10.244.0.6:80").await,
        json!({
            "addr": "10.244.0.6:80",
            "meshed": false,
            "opaque": false,
            "labels": {
                "dst_namespace": "shop",
                "dst_pod": "legacy-1",
                "dst_serviceaccount": "default",
            },
        })
    );
    assert_eq!(
        client.resolve("10.244.9.9:80").await,
        json!({"addr": "10.244.9.9:80", "meshed": false})
    );
    // Percent-encoded IPv6 brackets and colons work too.
    assert_eq!(
        client.resolve("%5Bfd00%3A%3A1%5D%3A80").await,
        json!({"addr": "[fd00::1]:80", "meshed": false})
    );
    assert_eq!(metrics.lookups(LookupResult::Meshed), 2);
    assert_eq!(metrics.lookups(LookupResult::Unmeshed), 3);
    server.stop().await;
}

#[tokio::test]
async fn garbage_gets_a_clear_400() {
    let (state, metrics) = ready_state(Config::default());
    let server = Server::start(state).await;
    let client = server.client();
    let long = format!("/v1/resolve?addr={}", "1".repeat(5000));
    for (query, says) in [
        ("/v1/resolve", "missing query parameter addr"),
        ("/v1/resolve?addr=", "is not IP:PORT"),
        ("/v1/resolve?addr=web.shop.svc:80", "is not IP:PORT"),
        ("/v1/resolve?addr=10.0.0.1", "is not IP:PORT"),
        ("/v1/resolve?addr=10.0.0.1:0", "port 0"),
        ("/v1/resolve?addr=%ZZ", "is not IP:PORT"),
        ("/v1/watch?addr=fd00::1:80", "is not IP:PORT"),
        (long.as_str(), "..."),
    ] {
        let response = client.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let error = response.body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{query}: {error:?}");
        assert!(error.len() < 200, "{query}: error echoes too much");
    }
    assert_eq!(metrics.lookups(LookupResult::BadRequest), 8);
    server.stop().await;
}

#[tokio::test]
async fn answers_503_until_the_caches_have_synced() {
    let (state, metrics) = state_with(Config::default());
    let server = Server::start(state.clone()).await;
    let client = server.client();
    for path in ["/v1/resolve?addr=10.0.0.1:80", "/v1/watch?addr=10.0.0.1:80"] {
        let response = client.get(path).await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.headers["retry-after"], "1");
        assert!(
            response.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("not finished reading")),
            "{:?}",
            response.body
        );
    }
    assert_eq!(metrics.lookups(LookupResult::Unavailable), 2);
    state.cache().set_ready();
    client.resolve("10.0.0.1:80").await;
    server.stop().await;
}

#[tokio::test]
async fn a_watch_streams_each_change_of_its_answer_and_heartbeats() {
    let (state, metrics) = ready_state(Config {
        heartbeat: Duration::from_millis(300),
        ..Config::default()
    });
    let server = Server::start(state.clone()).await;
    let client = server.client();

    let mut watch = client.watch("addr=10.244.0.5:8080").await;
    assert_eq!(watch.status, StatusCode::OK);
    assert_eq!(watch.headers["content-type"], "application/x-ndjson");
    assert_eq!(
        watch.update().await,
        json!({"addr": "10.244.0.5:8080", "meshed": false})
    );

    // The pod appears unmeshed, then is replaced by its meshed version.
    feed(&state, &pod("shop", "web-1", "10.244.0.5", "web", false));
    let line = watch.update().await;
    assert_eq!(line["meshed"], false);
    assert_eq!(line["labels"]["dst_pod"], "web-1");
    feed(&state, &pod("shop", "web-1", "10.244.0.5", "web", true));
    let line = watch.update().await;
    assert_eq!(line["meshed"], true);
    assert_eq!(line["identity"], "spiffe://cluster.local/ns/shop/sa/web");

    // Another port's annotation changes nothing for 8080: the next line is
    // a heartbeat. This port's annotation is an update.
    feed(
        &state,
        &annotated(
            pod("shop", "web-1", "10.244.0.5", "web", true),
            "config.weft.dev/opaque-ports",
            "9999",
        ),
    );
    let quiet = watch.line().await.expect("still open");
    assert!(is_heartbeat(&quiet), "expected a heartbeat, got {quiet}");
    feed(
        &state,
        &annotated(
            pod("shop", "web-1", "10.244.0.5", "web", true),
            "config.weft.dev/opaque-ports",
            "http",
        ),
    );
    assert_eq!(watch.update().await["opaque"], true);

    remove(&state, "shop", "web-1");
    assert_eq!(
        watch.update().await,
        json!({"addr": "10.244.0.5:8080", "meshed": false})
    );
    assert_eq!(metrics.watches(), 1);
    assert_eq!(metrics.lookups(LookupResult::Unmeshed), 1);

    // Heartbeats keep coming while nothing changes.
    for _ in 0..2 {
        let line = watch
            .line_within(Duration::from_secs(5))
            .await
            .expect("still open");
        assert!(is_heartbeat(&line), "{line}");
    }

    // Closing the server ends the stream cleanly.
    server.stop().await;
    let rest = watch.line().await;
    assert!(rest.is_none() || rest.as_ref().is_some_and(is_heartbeat));
    assert_eq!(metrics.watches(), 0);
}

#[tokio::test]
async fn a_cluster_ip_answers_with_its_services_ready_endpoints() {
    let (state, metrics) = ready_state(Config {
        heartbeat: Duration::from_millis(300),
        ..Config::default()
    });
    let svc = ServiceInfo::from_service(&service("shop", "web-svc", Some("10.96.0.10")))
        .expect("named service");
    state.cache().update(|index| index.apply_service(svc));
    let slice = |endpoints: &[(&str, bool)]| {
        let info =
            SliceInfo::from_slice(&endpoint_slice("shop", "web-svc-1", "web-svc", endpoints))
                .expect("an IPv4 slice");
        state.cache().update(|index| index.apply_slice(info));
    };
    slice(&[("10.244.0.5", true), ("10.244.0.6", false)]);
    feed(&state, &pod("shop", "web-1", "10.244.0.5", "web", false));
    let server = Server::start(state.clone()).await;
    let client = server.client();

    let unmeshed = json!({
        "addr": "10.96.0.10:80",
        "meshed": false,
        "service": {"name": "web-svc", "namespace": "shop"},
        "labels": {"dst_namespace": "shop", "dst_service": "web-svc"},
        "endpoints": [{
            "addr": "10.244.0.5:8080",
            "meshed": false,
            "opaque": false,
            "labels": {
                "dst_namespace": "shop",
                "dst_pod": "web-1",
                "dst_serviceaccount": "web",
            },
        }],
    });
    assert_eq!(client.resolve("10.96.0.10:80").await, unmeshed);
    // The pod's own address still answers as the pod.
    assert_eq!(
        client.resolve("10.244.0.5:8080").await["labels"]["dst_pod"],
        "web-1"
    );

    let mut watch = client.watch("addr=10.96.0.10:80").await;
    assert_eq!(watch.update().await, unmeshed);
    // The endpoint's pod gets a proxy: a new line for the ClusterIP.
    feed(&state, &pod("shop", "web-1", "10.244.0.5", "web", true));
    let line = watch.update().await;
    assert_eq!(line["endpoints"][0]["meshed"], true, "{line}");
    assert_eq!(
        line["endpoints"][0]["identity"],
        "spiffe://cluster.local/ns/shop/sa/web"
    );
    // The same pod again: only heartbeats.
    feed(&state, &pod("shop", "web-1", "10.244.0.5", "web", true));
    let quiet = watch.line().await.expect("still open");
    assert!(is_heartbeat(&quiet), "expected a heartbeat, got {quiet}");
    // The second endpoint turns ready, then the slice goes.
    slice(&[("10.244.0.5", true), ("10.244.0.6", true)]);
    let line = watch.update().await;
    assert_eq!(
        line["endpoints"][1],
        json!({"addr": "10.244.0.6:8080", "meshed": false}),
        "{line}"
    );
    state.cache().update(|index| {
        index.delete_slice(&weft_control::destination::SliceKey {
            namespace: "shop".to_string(),
            name: "web-svc-1".to_string(),
        })
    });
    assert_eq!(watch.update().await["endpoints"], json!([]));

    assert_eq!(metrics.lookups(LookupResult::Service), 2);
    assert_eq!(metrics.lookups(LookupResult::Unmeshed), 1);
    server.stop().await;
}

#[tokio::test]
async fn watches_are_capped_globally_and_per_client() {
    let (state, metrics) = ready_state(Config {
        max_watches: 3,
        max_watches_per_client: 2,
        heartbeat: Duration::from_millis(200),
        ..Config::default()
    });
    let server = Server::start(state.clone()).await;
    let client = server.client();

    let mut open = Vec::new();
    for port in [1, 2] {
        let mut watch = client.watch(&format!("addr=10.0.0.1:{port}")).await;
        assert_eq!(watch.status, StatusCode::OK);
        watch.update().await;
        open.push(watch);
    }
    // Both come from 127.0.0.1: the third is over the per-client cap.
    let refused = client.watch("addr=10.0.0.1:3").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(state.open_watches(), 2);

    // Closing one frees its slot once the server notices the client left.
    drop(open.pop());
    destination_support_wait(|| state.open_watches() == 1).await;
    let mut again = client.watch("addr=10.0.0.1:3").await;
    assert_eq!(again.status, StatusCode::OK);
    again.update().await;

    // The global cap: in this process every client is 127.0.0.1, so only
    // a state with a smaller global cap shows it.
    let (tight, _) = ready_state(Config {
        max_watches: 1,
        ..Config::default()
    });
    let tight_server = Server::start(tight).await;
    let tight_client = tight_server.client();
    let mut first = tight_client.watch("addr=10.0.0.1:1").await;
    first.update().await;
    let response = tight_client.get("/v1/watch?addr=10.0.0.1:2").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many watches")),
        "{:?}",
        response.body
    );

    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("weft_destination_watch_refusals_total{reason=\"client_limit\"} 1"),
        "{text}"
    );
    tight_server.stop().await;
    server.stop().await;
}

/// Polls `done` for up to 10 s.
async fn destination_support_wait(done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}
