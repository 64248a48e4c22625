//! token-usage-metrics: LLM token usage per organization, provider and model,
//! from JSON and SSE responses, as Prometheus metrics and access-log fields.
//!
//! Host-free and tested natively: `config`, `route` (is this an LLM call, to
//! which provider), `request_model` (the `model` of a streamed request body),
//! `report` (metric names and filter state of a finished call), and, in
//! mesh-core, `sse` (the framer) and `llm_usage` (the providers' formats).
//! The proxy-wasm glue in `filter` only exists in the wasm build.

pub mod config;
pub mod report;
pub mod request_model;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod filter;
