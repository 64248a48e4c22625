//! debate-access-log: puts debate and MCP context into filter state for one structured JSON access-log line per request.
//!
//! `config` and the decision modules are host-free and tested natively; the
//! proxy-wasm glue in `filter` only exists in the wasm build.

pub mod config;

#[cfg(target_arch = "wasm32")]
mod filter;
