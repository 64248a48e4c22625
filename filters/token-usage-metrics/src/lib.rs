//! token-usage-metrics: LLM token usage per organization, provider and model, from JSON and SSE responses.
//!
//! `config` and the decision modules are host-free and tested natively; the
//! proxy-wasm glue in `filter` only exists in the wasm build.

pub mod config;

#[cfg(target_arch = "wasm32")]
mod filter;
