//! Host-free logic shared by the MCP mesh filters.
//!
//! Nothing here calls the proxy-wasm host: every function is plain Rust and is
//! unit-tested natively. The filter crates keep their proxy-wasm glue thin and
//! call into this crate (and their own decision modules) for every decision.

pub mod body_prefix;
pub mod chain;
pub mod config_error;
pub mod error_body;
pub mod identity;
pub mod jsonrpc;
pub mod jsonrpc_scan;
pub mod llm_usage;
pub mod log_value;
pub mod mcp;
pub mod metrics;
pub mod mock_host;
pub mod path;
pub mod ratelimit_headers;
pub mod rls;
pub mod shared_keys;
pub mod sse;
pub mod stage;
pub mod token_bucket;
