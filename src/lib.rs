//! Shared helpers for the workspace's end-to-end tests, benches and examples.
//!
//! This package is `publish = false`: it exists because a virtual manifest cannot own `tests/`,
//! `benches/` and `examples/`.
