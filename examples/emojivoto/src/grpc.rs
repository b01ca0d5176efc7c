//! gRPC unary calls over HTTP/2 (h2c, prior knowledge), without a gRPC
//! framework: a call is a POST of `application/grpc` whose body is one
//! framed protobuf message, answered by 200, one framed message and the
//! `grpc-status` trailer. That is all emojivoto's services need, and it is
//! what weft's proxy sees on the wire.

pub mod client;
pub mod frame;
pub mod server;
pub mod status;

pub use self::client::Channel;
pub use self::status::{Code, Status};

/// The content type of gRPC requests and responses (protobuf is implied).
pub const CONTENT_TYPE: &str = "application/grpc";
