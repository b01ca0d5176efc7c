//! weft's sidecar proxy. Stub: being written (issue 4).
#![forbid(unsafe_code)]
