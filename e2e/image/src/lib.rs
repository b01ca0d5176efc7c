//! weft's container images, built without a Docker engine: pure Rust that
//! writes each image as an OCI image layout in one tar, which containerd
//! imports with `ctr -n k8s.io images import FILE`.
//!
//! The archives are reproducible: the same inputs give the same bytes and
//! so the same manifest digest ([`layer`] says how). [`weft`] knows the four
//! images weft ships and writes them from a folder of static binaries, which
//! [`bins`] builds (the Rust ones for musl, and our own pause). The
//! `weft-image` binary runs both steps.
#![forbid(unsafe_code)]

pub mod bins;
pub mod digest;
pub mod elf;
pub mod error;
pub mod layer;
pub mod layout;
pub mod libs;
pub mod spec;
pub mod stamp;
pub mod weft;

pub use digest::Digest;
pub use error::{ImageError, Result};
pub use layer::{Entry, Layer};
pub use layout::{WrittenImage, write_archive};
pub use spec::ImageSpec;
pub use weft::write_weft_images;
