//! weft's Kubernetes manifests: the control-plane namespace, the injector's
//! RBAC, Deployment, Service and PodDisruptionBudget, its serving
//! certificate (a Secret, or cert-manager resources), and the
//! `MutatingWebhookConfiguration` that sends new pods to it; with the
//! mesh's identity material, also weft-control (identity and destination):
//! its RBAC, Services, Deployment, the issuer Secret and the trust-anchor
//! ConfigMap.
//!
//! The manifests are YAML templates in `manifests/`, embedded in the binary
//! and rendered by [`render`] into one stream for `kubectl apply -f -`.
//! Every option is validated, and substitution happens on parsed YAML, so no
//! value can change a document's structure. Making certificates is
//! `weft-certs`'s job; printing the result is `weft install`'s.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod error;
mod options;
mod render;
mod template;
mod validate;

pub use error::Error;
pub use options::{
    CONTROL_NAME, DEFAULT_LOG_LEVEL, DEFAULT_NAMESPACE, DEFAULT_REPLICAS, DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TRUST_DOMAIN, FailurePolicy, HA_REPLICAS, IMAGE_REGISTRY, INJECTOR_NAME,
    ISSUER_SECRET_NAME, IdentityCerts, RenderOptions, TLS_SECRET_NAME,
    TRUST_ANCHORS_CONFIGMAP_NAME, TRUST_ANCHORS_PATH, Tls, VERSION, WEBHOOK_NAME, WebhookTarget,
    default_control_image, default_injector_image, default_proxy_image, image,
};
pub use render::{render, render_documents};
