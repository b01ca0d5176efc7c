//! Decision + patch for one pod, the work the webhook does per review:
//! a typical Deployment pod (the `deployment-pod` golden input) and a ~64 KB
//! pod (many containers, env vars and annotations).
//!
//!     cargo bench -p weft-core --bench plan
//!
//! Target: under 100 µs for a typical pod.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use weft_core::{InjectorConfig, plan};

const TYPICAL: &str = include_str!("../tests/golden/deployment-pod.pod.json");

/// A pod of about `target` bytes of JSON: containers with env, ports and
/// mounts, plus annotations, grown until the size is reached.
fn large_pod(target: usize) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("config.weft.dev/opaque-ports".into(), json!("grpc-0,6379"));
    annotations.insert(
        "config.weft.dev/skip-inbound-ports".into(),
        json!("metrics-0,9000-9100"),
    );
    let mut containers = Vec::new();
    let mut pod = json!({});
    for i in 0.. {
        annotations.insert(
            format!("example.com/note-{i}"),
            json!(format!(
                "annotation value {i} that a CI system or an operator wrote"
            )),
        );
        let env: Vec<Value> = (0..24)
            .map(|e| json!({"name": format!("SETTING_{i}_{e}"), "value": format!("value-{e}-of-container-{i}")}))
            .collect();
        containers.push(json!({
            "name": format!("app-{i}"),
            "image": format!("registry.example.com/team/app-{i}:1.{i}.0"),
            "env": env,
            "ports": [
                {"name": format!("grpc-{i}"), "containerPort": 8000 + i},
                {"name": format!("metrics-{i}"), "containerPort": 9000 + i},
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": format!("/data/{i}")}],
        }));
        pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "big-", "namespace": "shop", "labels": {"app": "big"}, "annotations": annotations},
            "spec": {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]},
        });
        if pod.to_string().len() >= target {
            break;
        }
    }
    pod
}

fn bench_plan(c: &mut Criterion) {
    let config = InjectorConfig::default();
    let enabled = BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]);
    let typical: Value = match serde_json::from_str(TYPICAL) {
        Ok(pod) => pod,
        Err(e) => panic!("golden pod parses: {e}"),
    };
    let large = large_pod(64 * 1024);

    let mut group = c.benchmark_group("plan");
    for (name, pod) in [("typical", &typical), ("64KB", &large)] {
        let size = pod.to_string().len();
        let planned = plan(pod, "shop", &enabled, &config);
        assert!(
            planned.is_ok_and(|p| p.is_injected()),
            "{name} pod is injected"
        );
        println!("plan/{name}: pod of {size} bytes of JSON");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(name, |b| {
            b.iter(|| plan(black_box(pod), "shop", &enabled, &config))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
