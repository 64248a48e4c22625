//! org-rate-limit: per-organization token buckets in Envoy shared data, exact across worker threads.
//!
//! `config` and the decision modules are host-free and tested natively; the
//! proxy-wasm glue in `filter` only exists in the wasm build.

pub mod config;

#[cfg(target_arch = "wasm32")]
mod filter;
