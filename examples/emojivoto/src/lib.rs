//! emojivoto, weft's demo app: a Rust version of the public emojivoto
//! sample with the same interfaces (gRPC package `emojivoto.v1`, the web
//! API `/api/list`, `/api/vote`, `/api/leaderboard`), built as one binary
//! whose subcommands are the sample's four workloads: `emoji-svc`,
//! `voting-svc`, `web` and `vote-bot`, and `vote-load`, an open-loop load
//! generator for voting-svc that benchmarks the mesh.
//!
//! gRPC is spoken directly over hyper's HTTP/2 (no code generator, no
//! protoc), so the wire is plain to see. Votes for `:doughnut:` always
//! fail, which gives a mesh's dashboards something to show.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod bot;
pub mod cli;
pub mod emoji;
pub mod emoji_svc;
pub mod grpc;
pub mod health;
pub mod poll;
pub mod proto;
pub mod query;
pub mod serve;
pub mod shutdown;
pub mod vote_load;
pub mod vote_method;
pub mod voting_svc;
pub mod web;
