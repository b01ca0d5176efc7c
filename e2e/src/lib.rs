//! weft end-to-end harness. Stub: being written (issue 3).
