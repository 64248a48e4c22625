//! org-rate-limit: per-organization token buckets in Envoy shared data, exact
//! across worker threads.
//!
//! `config`, `client` (who an anonymous request comes from), `rules` (which bucket, which limit, what cost), `store` (the
//! compare-and-swap charge against shared data, behind a trait), `decide`
//! (decision, 429 answer, headers), `global` (rate-limit service descriptors)
//! and `rls` (its protobuf messages) are host-free and tested natively; the
//! proxy-wasm glue in `filter` only exists in the wasm build.

pub mod client;
pub mod config;
pub mod decide;
pub mod global;
pub mod rls;
pub mod rules;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod filter;
