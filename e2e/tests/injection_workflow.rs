//! The workflows people follow with the real API server and kubectl:
//! annotate a namespace and `kubectl rollout restart`, and review an
//! injection with `--dry-run=server`, warnings and the audit log.

mod common;

use common::{DEPLOYMENT, Env, controller, injected, pod_yaml};
use kube::Api;
use weft_e2e::webhook::FailurePolicy;

/// 3. The user's workflow: a Deployment from before the namespace was
/// annotated keeps its pods until `kubectl rollout restart`; then the new
/// ReplicaSet's pods are injected and the old pods are left as they were.
#[tokio::test]
async fn rollout_restart_injects_the_new_replica_set_only() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("late", None).await;
    env.kubectl_stdin(&["apply", "-f", "-"], &DEPLOYMENT.replace("NS", "late"))
        .await;
    let old = env.pods_owned("late", "app=web", 2, |_| true).await;
    assert!(old.iter().all(|p| !injected(p)));
    let old_rs = controller(&old[0].metadata, "ReplicaSet")
        .expect("owned")
        .to_string();

    env.kubectl(&["annotate", "namespace", "late", "weft.dev/inject=enabled"])
        .await;
    // The injector reads namespaces from its watch cache: wait until it has
    // seen the annotation (a dry-run pod comes back injected), as a person
    // would check with `weft check` before restarting.
    weft_e2e::wait::eventually(
        "the injector to see the annotation",
        common::CONVERGE,
        || {
            let env = &env;
            async move {
                let pod = env.try_dry_run(&pod_yaml("late", "probe", &[], "")).await?;
                let pod: k8s_openapi::api::core::v1::Pod =
                    serde_json::from_value(pod).map_err(|e| e.to_string())?;
                if injected(&pod) {
                    Ok(())
                } else {
                    Err("not injected yet".to_string())
                }
            }
        },
    )
    .await
    .expect("annotation seen");
    // Nothing changed for the running pods.
    for pod in &old {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        assert!(
            !injected(&env.pod("late", name).await),
            "{name} changed in place"
        );
    }

    env.kubectl(&["rollout", "restart", "deployment/web", "-n", "late"])
        .await;
    let new = env
        .pods_owned("late", "app=web", 2, |rs| rs != old_rs)
        .await;
    assert!(
        new.iter().all(injected),
        "the new ReplicaSet's pods are injected"
    );
    for pod in &old {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let now = env.pod("late", name).await;
        assert_eq!(now.metadata.uid, pod.metadata.uid, "{name} was replaced");
        assert!(!injected(&now), "{name} was injected in place");
    }
}

/// 5. The reviewer's workflow: `kubectl create --dry-run=server -o yaml`
/// shows the injected pod and the webhook's warnings; a real creation leaves
/// the webhook's audit annotations and patch in the audit log.
#[tokio::test]
async fn dry_run_shows_the_injected_pod_and_the_audit_log_says_why() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("review", Some("enabled")).await;
    // A typo'd override key is a warning only: the pod is still injected.
    let annotations = [("config.weft.dev/proxy-cpu-requets", "100m")];
    let yaml = pod_yaml("review", "reviewed", &annotations, "");

    let out = env
        .kubectl_stdin(
            &["create", "--dry-run=server", "-o", "yaml", "-f", "-"],
            &yaml,
        )
        .await;
    let shown: k8s_openapi::api::core::v1::Pod =
        serde_yaml::from_str(&out.stdout).expect("kubectl prints the pod");
    assert!(injected(&shown), "dry-run shows the injected pod");
    assert!(
        out.stderr.contains("Warning:") && out.stderr.contains("proxy-cpu-requets"),
        "kubectl shows the webhook's warning: {}",
        out.stderr
    );
    // A dry run stores nothing.
    let stored = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(env.cluster.client(), "review")
        .get_opt("reviewed")
        .await
        .expect("get");
    assert!(stored.is_none());

    env.kubectl_stdin(&["create", "-f", "-"], &yaml).await;
    let audit_log = env.cluster.audit_log();
    let event = weft_e2e::wait::eventually(
        "the audit event of review/reviewed",
        common::CONVERGE,
        || {
            let audit_log = audit_log.clone();
            async move {
                let events = weft_e2e::audit::events_for(&audit_log, "pods", "review", "reviewed")
                    .map_err(|e| e.to_string())?;
                events
                    .into_iter()
                    .find(|e| e.verb == "create")
                    .ok_or_else(|| "no create event yet".to_string())
            }
        },
    )
    .await
    .expect("audit event");
    let a = &event.annotations;
    assert_eq!(
        a.get("inject.weft.dev/injected").map(String::as_str),
        Some("true"),
        "{a:#?}"
    );
    let stored = env.pod("review", "reviewed").await;
    let digest = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get("weft.dev/inject-digest"))
        .expect("digest annotation");
    assert_eq!(a.get("inject.weft.dev/digest"), Some(digest), "{a:#?}");
    let mutation = a
        .get("mutation.webhook.admission.k8s.io/round_0_index_0")
        .expect("the API server records the mutation");
    assert!(
        mutation.contains("inject.weft.dev") && mutation.contains("\"mutated\":true"),
        "{mutation}"
    );
    let patch = a
        .get("patch.webhook.admission.k8s.io/round_0_index_0")
        .expect("the Request-level policy records the patch");
    assert!(patch.contains("weft-proxy"), "{patch}");
}

/// The operator's trust-anchor rotation: the `weft-trust-anchors` ConfigMap
/// (here its projected file) becomes a bundle of the old and the new anchor,
/// and pods created from then on carry the bundle, without restarting the
/// injector. A broken file in between reaches no pod.
#[tokio::test]
async fn rotated_trust_anchors_reach_new_pods_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ca-bundle.crt");
    let day = std::time::Duration::from_secs(86_400);
    let old = weft_certs::TrustAnchor::generate("old anchor", day).expect("anchor");
    let new = weft_certs::TrustAnchor::generate("new anchor", day).expect("anchor");
    std::fs::write(&file, old.cert_pem()).expect("write anchors");
    let flag = format!("--trust-anchors-file={}", file.display());
    let env = Env::start_with(FailurePolicy::Ignore, &[&flag]).await;
    env.namespace("rotating", Some("enabled")).await;

    let anchors_of_a_new_pod = || {
        let env = &env;
        async move {
            let pod = env
                .try_dry_run(&pod_yaml("rotating", "probe", &[], ""))
                .await?;
            let proxy = pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == "weft-proxy")
                .ok_or("not injected yet")?;
            proxy["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == "WEFT_PROXY_TRUST_ANCHORS")
                .and_then(|v| v["value"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| "no WEFT_PROXY_TRUST_ANCHORS".to_string())
        }
    };
    let wait_for = |want: String, what: &'static str| {
        let probe = &anchors_of_a_new_pod;
        async move {
            weft_e2e::wait::eventually(what, common::CONVERGE, || {
                let want = want.clone();
                async move {
                    let got = probe().await?;
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!(
                            "a new pod still gets {} bytes of anchors",
                            got.len()
                        ))
                    }
                }
            })
            .await
            .expect(what);
        }
    };
    wait_for(old.cert_pem().to_owned(), "pods to get the old anchor").await;

    let bundle = format!("{}{}", old.cert_pem(), new.cert_pem());
    std::fs::write(&file, &bundle).expect("write the bundle");
    wait_for(bundle.clone(), "pods to get the bundle").await;

    std::fs::write(&file, "not a certificate\n").expect("write garbage");
    let failures = || async {
        let text = env.injector.metrics().await.expect("injector metrics");
        text.lines()
            .find_map(|l| {
                l.strip_prefix("weft_injector_trust_anchors_reloads_total{result=\"failure\"} ")
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    weft_e2e::wait::eventually(
        "the broken file to be refused",
        common::CONVERGE,
        || async {
            match failures().await {
                Some(n) if n >= 1.0 => Ok(()),
                other => Err(format!("failures: {other:?}")),
            }
        },
    )
    .await
    .expect("refused");
    assert_eq!(
        anchors_of_a_new_pod().await.expect("a new pod"),
        bundle,
        "a broken anchors file reached a pod"
    );
}
