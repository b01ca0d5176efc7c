//! Unit tests of `decision`: every never-inject rule, the opt-in in all its
//! combinations, clashes, and the words of each reason.

use super::*;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Volume};

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn app_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn admit_in(
    spec: &PodSpec,
    pod: &[(&str, &str)],
    namespace: &str,
    ns: &[(&str, &str)],
) -> Result<Object, SkipReason> {
    let config = InjectorConfig::default();
    admit(
        spec,
        &annotations(pod),
        namespace,
        &annotations(ns),
        &config,
    )
}

const ENABLED: &[(&str, &str)] = &[(INJECT_ANNOTATION, "enabled")];
const DISABLED: &[(&str, &str)] = &[(INJECT_ANNOTATION, "disabled")];

#[test]
fn enabled_namespace_injects() {
    assert_eq!(
        admit_in(&app_spec(), &[], "shop", ENABLED),
        Ok(Object::Namespace("shop".into()))
    );
}

#[test]
fn enabled_pod_injects_in_a_plain_namespace() {
    assert_eq!(admit_in(&app_spec(), ENABLED, "shop", &[]), Ok(Object::Pod));
}

#[test]
fn pod_disabled_wins_over_namespace_enabled() {
    assert_eq!(
        admit_in(&app_spec(), DISABLED, "shop", ENABLED),
        Err(SkipReason::DisabledByPod)
    );
}

#[test]
fn pod_enabled_wins_over_namespace_disabled() {
    assert_eq!(
        admit_in(&app_spec(), ENABLED, "shop", DISABLED),
        Ok(Object::Pod)
    );
}

#[test]
fn namespace_disabled_skips() {
    assert_eq!(
        admit_in(&app_spec(), &[], "shop", DISABLED),
        Err(SkipReason::DisabledByNamespace {
            namespace: "shop".into()
        })
    );
}

#[test]
fn nothing_set_is_not_enabled() {
    assert_eq!(
        admit_in(&app_spec(), &[], "shop", &[]),
        Err(SkipReason::NotEnabled)
    );
}

#[test]
fn invalid_values_name_the_object_and_value() {
    assert_eq!(
        admit_in(&app_spec(), &[(INJECT_ANNOTATION, "true")], "shop", ENABLED),
        Err(SkipReason::InvalidInjectValue {
            object: Object::Pod,
            value: "true".into()
        })
    );
    assert_eq!(
        admit_in(&app_spec(), &[], "shop", &[(INJECT_ANNOTATION, "Enabled")]),
        Err(SkipReason::InvalidInjectValue {
            object: Object::Namespace("shop".into()),
            value: "Enabled".into()
        })
    );
    // The pod's valid value makes the namespace's invalid one irrelevant.
    assert_eq!(
        admit_in(&app_spec(), ENABLED, "shop", &[(INJECT_ANNOTATION, "yes")]),
        Ok(Object::Pod)
    );
}

#[test]
fn host_network_is_never_injected() {
    let spec = PodSpec {
        host_network: Some(true),
        ..app_spec()
    };
    assert_eq!(
        admit_in(&spec, ENABLED, "shop", &[]),
        Err(SkipReason::HostNetwork)
    );
    let spec = PodSpec {
        host_network: Some(false),
        ..app_spec()
    };
    assert_eq!(admit_in(&spec, ENABLED, "shop", &[]), Ok(Object::Pod));
}

#[test]
fn system_namespaces_are_never_injected() {
    assert_eq!(
        admit_in(&app_spec(), ENABLED, "kube-system", ENABLED),
        Err(SkipReason::KubeSystem)
    );
    assert_eq!(
        admit_in(&app_spec(), ENABLED, "weft", ENABLED),
        Err(SkipReason::ControlPlaneNamespace {
            namespace: "weft".into()
        })
    );
}

#[test]
fn a_pod_with_the_proxy_is_already_injected() {
    for native in [true, false] {
        let mut spec = app_spec();
        let proxy = Container {
            name: PROXY_CONTAINER_NAME.into(),
            ..Container::default()
        };
        if native {
            spec.init_containers = Some(vec![proxy]);
        } else {
            spec.containers.insert(0, proxy);
        }
        // Already-injected wins even in namespaces that are never injected.
        assert_eq!(
            admit_in(&spec, ENABLED, "kube-system", &[]),
            Err(SkipReason::AlreadyInjected)
        );
    }
}

#[test]
fn clashing_names_skip() {
    let mut spec = app_spec();
    spec.init_containers = Some(vec![Container {
        name: INIT_CONTAINER_NAME.into(),
        ..Container::default()
    }]);
    assert_eq!(
        admit_in(&spec, ENABLED, "shop", &[]),
        Err(SkipReason::NameConflict {
            kind: "init container",
            name: INIT_CONTAINER_NAME.into()
        })
    );
    let mut spec = app_spec();
    spec.volumes = Some(vec![Volume {
        name: IDENTITY_VOLUME_NAME.into(),
        ..Volume::default()
    }]);
    assert_eq!(
        admit_in(&spec, ENABLED, "shop", &[]),
        Err(SkipReason::NameConflict {
            kind: "volume",
            name: IDENTITY_VOLUME_NAME.into()
        })
    );
    // Clashes only matter for pods that would be injected.
    assert_eq!(
        admit_in(&spec, &[], "shop", &[]),
        Err(SkipReason::NotEnabled)
    );
}

#[test]
fn proxy_ports_in_the_app_skip() {
    let mut spec = app_spec();
    spec.containers[0].ports = Some(vec![
        ContainerPort {
            container_port: 8080,
            ..ContainerPort::default()
        },
        ContainerPort {
            container_port: 4191,
            ..ContainerPort::default()
        },
    ]);
    let skip = admit_in(&spec, ENABLED, "shop", &[]);
    assert_eq!(
        skip,
        Err(SkipReason::PortConflict {
            container: "app".into(),
            port: 4191
        })
    );
}

#[test]
fn reasons_read_as_sentences() {
    let reason = SkipReason::InvalidInjectValue {
        object: Object::Namespace("shop".into()),
        value: "yes".into(),
    };
    assert_eq!(
        reason.to_string(),
        "annotation weft.dev/inject on namespace \"shop\" is \"yes\"; expected enabled or disabled"
    );
    let reason = SkipReason::MalformedOverride {
        annotation: "config.weft.dev/proxy-cpu-limit".into(),
        value: "lots".into(),
        object: Object::Pod,
        problem: "no number before the unit".into(),
        expected: "a Kubernetes quantity such as 100m or 1.5".into(),
    };
    assert_eq!(
        reason.to_string(),
        "annotation config.weft.dev/proxy-cpu-limit on the pod is \"lots\": no number before \
         the unit; expected a Kubernetes quantity such as 100m or 1.5"
    );
    assert_eq!(
        Decision::Skip(SkipReason::HostNetwork).to_string(),
        format!("skip: {}", SkipReason::HostNetwork)
    );
    assert_eq!(
        Decision::Inject {
            reasons: vec!["a".into(), "b".into()]
        }
        .to_string(),
        "inject: a; b"
    );
}

#[test]
fn long_and_odd_values_are_quoted_safely() {
    assert_eq!(quote("a\nb"), "\"a\\nb\"");
    let quoted = quote(&"é".repeat(200));
    assert_eq!(quoted, format!("{:?}...", "é".repeat(MAX_VALUE_SHOWN)));
}

#[test]
fn codes_and_warnings() {
    assert_eq!(SkipReason::NotEnabled.code(), "not-enabled");
    assert!(!SkipReason::NotEnabled.is_warning());
    assert!(!SkipReason::HostNetwork.is_warning());
    let invalid = SkipReason::InvalidInjectValue {
        object: Object::Pod,
        value: "x".into(),
    };
    assert!(invalid.is_warning());
    assert_eq!(invalid.code(), "invalid-inject-value");
}
