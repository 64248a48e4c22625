//! api-key-auth: resolves an API key to an organization and hands the verified
//! identity to the next filters and the service.
//!
//! `config` and the decision modules are host-free and tested natively; the
//! proxy-wasm glue in `filter` only exists in the wasm build.

pub mod config;

#[cfg(target_arch = "wasm32")]
mod filter;
