//! mcp-guard: the MCP front door of a sidecar.
//!
//! - Holds a 2026-07-28 request's `MCP-Protocol-Version`, `Mcp-Method` and
//!   `Mcp-Name` to its body (`mesh_core::mcp::check`): a request whose
//!   headers lie is refused before a byte of its body reaches the service,
//!   so every decision made on those headers can be trusted.
//! - Authorizes each MCP call (method, tool, prompt, resource URI) for the
//!   caller's role, plan, organization, key id and scopes: at header time
//!   for modern requests, on the body for handshake-era ones, every message
//!   of a batch.
//! - Shows the caller only the tools, prompts and resources it may call in
//!   `tools/list`, `prompts/list` and `resources/list` responses, JSON or SSE.
//!
//! Host-free modules: `config` (pluginConfig), `glob` (name patterns),
//! `rules` (the decision), `list_filter` (list responses), `stage` (one
//! request); `filter` is `mesh_host::glue` around the stage (wasm, feature
//! `module`).

pub mod config;
pub mod glob;
pub mod list_filter;
pub mod rules;
pub mod stage;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter;
