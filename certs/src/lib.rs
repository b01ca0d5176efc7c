//! weft's certificates. Stub: being written.
#![forbid(unsafe_code)]
