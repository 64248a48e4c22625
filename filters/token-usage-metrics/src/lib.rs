//! token-usage-metrics: LLM token usage per organization, provider and model,
//! from JSON and SSE responses, as Prometheus metrics and access-log fields.
//!
//! Host-free and tested natively: `config`, `route` (is this an LLM call, to
//! which provider), `request_model` (the `model` of a streamed request body),
//! `report` (metric names and filter state of a finished call), the token
//! budgets (`budget_config`, `budget_window`, `budget`, `budget_request`,
//! `budget_reply`, `budget_flow`; see the README), and, in
//! mesh-core, `sse` (the framer) and `llm_usage` (the providers' formats).
//! `stage` runs them per request, host-free; the standalone module in `filter`
//! (wasm build, feature `module`) is `mesh_host::glue` around that stage.

pub mod budget;
pub mod budget_config;
pub mod budget_flow;
pub mod budget_reply;
pub mod budget_request;
pub mod budget_window;
pub mod config;
pub mod report;
pub mod request_model;
pub mod route;
pub mod stage;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter;
