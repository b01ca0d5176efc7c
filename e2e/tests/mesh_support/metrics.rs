//! Reading Prometheus text: the harness's own reader, shared with the node suite.

pub use weft_e2e::metrics::metric;
