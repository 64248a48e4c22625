//! debate-access-log: puts debate and MCP context into filter state for one
//! structured JSON access-log line per request.
//!
//! The filter writes `mcp_*` filter-state values in `on_log`, which Envoy runs
//! before the listener's access loggers, so the log's `json_format` maps them
//! to top-level fields (`%FILTER_STATE(wasm.mcp_debate_id:PLAIN)%`). Doing it
//! there covers every request, including those that auth or rate limiting
//! answered before this filter saw them, and those whose upstream reset.
//!
//! `config`, `settings` (the config compiled), `path_pattern`, `trace_context`, `sampling`, `record`,
//! `response_watch` and `stats` are
//! host-free and tested natively; `stage` runs them per request, host-free
//! too; the standalone module in `filter` (wasm build, feature `module`) is
//! `mesh_host::glue` around that stage.

pub mod config;
pub mod path_pattern;
pub mod record;
pub mod response_watch;
pub mod sampling;
pub mod settings;
pub mod stage;
pub mod stats;
pub mod trace_context;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter;
