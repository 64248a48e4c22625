//! The proxy-wasm side of the MCP mesh filters: [`glue`] is the one root
//! context and HTTP context every module is, and the one implementation of
//! `mesh_core::stage::Host`.
//!
//! Everything that decides lives in `mesh-core` and in each filter's
//! host-free stage; this crate only talks to the host, and never panics: a
//! failed host call is a missing value or a no-op, because a panic would
//! abort the VM and take the sidecar's traffic down with it.

pub mod glue;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

thread_local! {
    /// The host's log level as last asked, and calls left until asking again.
    static HOST_LEVEL: std::cell::Cell<(u8, u16)> = const { std::cell::Cell::new((0, 0)) };
}

/// True when the host would print a line at `level`: per-request debug lines
/// are only formatted then. The level is asked of the host every 256th call,
/// so a change through Envoy's `/logging` admin endpoint shows within that.
pub fn log_enabled(level: LogLevel) -> bool {
    HOST_LEVEL.with(|cell| {
        let (mut host, left) = cell.get();
        let left = if left == 0 {
            host = hostcalls::get_log_level().map_or(LogLevel::Trace as u8, |l| l as u8);
            255
        } else {
            left - 1
        };
        cell.set((host, left));
        level as u8 >= host
    })
}
