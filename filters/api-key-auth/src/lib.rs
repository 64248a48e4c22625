//! api-key-auth: resolves an API key or a signed JWT API token to an
//! organization, key id, plan and role, hands that verified identity to the
//! next filters and the service, and answers 401/403 otherwise.
//!
//! Everything that decides is host-free and tested natively:
//! `config` (pluginConfig and its validation), `credential` (finding the
//! credential in headers and query), `keystore` (SHA-256 key index),
//! `jwt` (token verification), `routes` (skip paths, route rules),
//! `outcome` (reasons, statuses, messages), `policy` (the decision).
//! `stage` runs them per request, host-free; the standalone module in `filter`
//! (wasm build, feature `module`) is `mesh_host::glue` around that stage.

pub mod assertion;
pub mod config;
pub mod credential;
pub mod jws;
pub mod jwt;
pub mod keystore;
pub mod outcome;
pub mod policy;
pub mod routes;
pub mod rsa_pkcs1;
pub mod stage;
pub mod timestamp;
pub mod token_cache;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter;
