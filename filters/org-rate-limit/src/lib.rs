//! org-rate-limit: per-organization token buckets in Envoy shared data, exact
//! across worker threads.
//!
//! `config`, `client` (who an anonymous request comes from), `rules` (which bucket, which limit, what cost), `store` (the
//! compare-and-swap charge against shared data, behind a trait), `decide`
//! (decision, 429 answer, headers) and `global` (rate-limit service
//! descriptors; the messages are `mesh_core::rls`) are host-free and tested natively;
//! `stage` (the request flow) is host-free too and driven by native tests;
//! the standalone module in `filter` (wasm build, feature `module`) is
//! `mesh_host::glue` around that stage.

pub mod client;
pub mod config;
pub mod decide;
pub mod global;
pub mod rules;
pub mod stage;
pub mod store;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter;
