//! weft's Kubernetes manifests. Stub: being written.
#![forbid(unsafe_code)]
