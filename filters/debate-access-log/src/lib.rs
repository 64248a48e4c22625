//! debate-access-log: puts debate and MCP context into filter state for one
//! structured JSON access-log line per request.
//!
//! The filter writes `mcp_*` filter-state values in `on_log`, which Envoy runs
//! before the listener's access loggers, so the log's `json_format` maps them
//! to top-level fields (`%FILTER_STATE(wasm.mcp_debate_id:PLAIN)%`). Doing it
//! there covers every request, including those that auth or rate limiting
//! answered before this filter saw them, and those whose upstream reset.
//!
//! `config`, `path_pattern`, `trace_context`, `sampling`, `record`,
//! `response_watch` and `stats` are
//! host-free and tested natively; the proxy-wasm glue in `filter` only exists
//! in the wasm build.

pub mod config;
pub mod path_pattern;
pub mod record;
pub mod response_watch;
pub mod sampling;
pub mod stats;
pub mod trace_context;

#[cfg(target_arch = "wasm32")]
mod filter;
