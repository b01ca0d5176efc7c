//! The injector failing or changing under the API server: down under each
//! failure policy, and its serving certificate rotated under load.

mod common;

use common::{Env, injected, pod_yaml};
use kube::Api;
use weft_e2e::webhook::FailurePolicy;

/// 6. Injector down: with the default policy (Ignore) pods are created
/// uninjected and the cluster keeps working; with Fail the creation is
/// refused with a message naming the webhook. Back up, it injects again.
#[tokio::test]
async fn injector_down_follows_the_failure_policy() {
    let mut env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("meshed", Some("enabled")).await;
    env.injector.stop();

    env.kubectl_stdin(
        &["create", "-f", "-"],
        &pod_yaml("meshed", "while-down", &[], ""),
    )
    .await;
    assert!(!injected(&env.pod("meshed", "while-down").await));

    let fail =
        weft_e2e::webhook::configuration(&env.injector, FailurePolicy::Fail).expect("render");
    weft_e2e::webhook::apply(&env.cluster, &fail)
        .await
        .expect("apply");
    // The API server switches to the new policy once its informer sees it.
    let kubectl = env.cluster.kubectl();
    let refusal =
        weft_e2e::wait::eventually("creation refused under Fail", common::CONVERGE, || {
            let kubectl = kubectl.clone();
            async move {
                match kubectl
                    .run_stdin(
                        &["create", "--dry-run=server", "-f", "-"],
                        &pod_yaml("meshed", "refused", &[], ""),
                    )
                    .await
                {
                    Err(weft_e2e::Error::Kubectl { stderr, .. }) => Ok(stderr),
                    Err(e) => Err(e.to_string()),
                    Ok(_) => Err("still created".to_string()),
                }
            }
        })
        .await
        .expect("refused");
    assert!(
        refusal.contains("inject.weft.dev") && refusal.contains("failed calling webhook"),
        "the refusal names weft's webhook: {refusal}"
    );

    env.injector.restart().await.expect("injector restarts");
    weft_e2e::webhook::wait_live(&env.cluster)
        .await
        .expect("live again");
    env.kubectl_stdin(
        &["create", "-f", "-"],
        &pod_yaml("meshed", "after", &[], ""),
    )
    .await;
    assert!(injected(&env.pod("meshed", "after").await));
}

/// 7. The serving certificate is rotated on disk while pods are being
/// created in a loop: every creation succeeds (the policy is Fail, so a
/// failed call would show) and every pod is injected.
#[tokio::test]
async fn certificate_rotation_fails_no_admission() {
    const ROTATIONS: usize = 3;
    let env = Env::start(FailurePolicy::Fail).await;
    env.namespace("rotating", Some("enabled")).await;
    let reloads = |metrics: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with("weft_injector_certificate_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = reloads(&env.injector.metrics().await.expect("metrics"));

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let kubectl = env.cluster.kubectl();
        let done = done.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            // Keep creating until the rotations are over, then a few more so
            // the last certificate serves too. Bounded either way.
            let mut after_done = 0;
            while after_done < 5 && created.len() < 500 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    after_done += 1;
                }
                let name = format!("p{}", created.len());
                let out = kubectl
                    .run_stdin(
                        &["create", "-f", "-"],
                        &pod_yaml("rotating", &name, &[], ""),
                    )
                    .await;
                if let Err(e) = out {
                    return Err(format!("creating {name}: {e}"));
                }
                created.push(name);
            }
            Ok(created)
        })
    };
    for i in 1..=ROTATIONS {
        env.injector.rotate_certificate().expect("rotate");
        let want = before + i as f64;
        weft_e2e::wait::eventually(
            "the injector to load the new certificate",
            common::CONVERGE,
            || {
                let injector = &env.injector;
                async move {
                    let seen = reloads(&injector.metrics().await.map_err(|e| e.to_string())?);
                    if seen >= want {
                        Ok(())
                    } else {
                        Err(format!("{seen} reloads"))
                    }
                }
            },
        )
        .await
        .expect("reloaded");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let created = creator
        .await
        .expect("creator task")
        .expect("no admission failed");
    assert!(
        created.len() > ROTATIONS,
        "pods were created throughout: {}",
        created.len()
    );
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(env.cluster.client(), "rotating")
        .list(&Default::default())
        .await
        .expect("list");
    assert_eq!(pods.items.len(), created.len());
    assert!(pods.items.iter().all(injected), "every pod was injected");
}
