//! Thin proxy-wasm helpers shared by the four filters.
//!
//! Everything that decides lives in `mesh-core` or in each filter's host-free
//! modules; this crate only talks to the host, and never panics: a failed host
//! call is logged or ignored, because a panic would abort the VM and take the
//! sidecar's traffic down with it.

use mesh_core::config_error::{self, Validate};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::RootContext;
use proxy_wasm::types::{LogLevel, MapType, MetricType};
use serde::de::DeserializeOwned;
use std::rc::Rc;

/// Reads and validates the pluginConfig once, in `on_configure`.
///
/// On a mistake it logs exactly one critical line naming the field
/// (`wasm log api-key-auth api-key-auth: invalid pluginConfig: keys[1].hash: must be 64 hex digits`)
/// and returns `None`; `on_configure` then returns false and Envoy refuses the
/// filter instead of running it half-configured.
pub fn load_config<T: DeserializeOwned + Validate>(root: &dyn RootContext) -> Option<Rc<T>> {
    let bytes = root.get_plugin_configuration().unwrap_or_default();
    match config_error::load::<T>(&bytes) {
        Ok(config) => Some(Rc::new(config)),
        Err(err) => {
            // Envoy prefixes the line with the plugin's name and root id.
            log(LogLevel::Critical, &format!("invalid pluginConfig: {err}"));
            None
        }
    }
}

pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

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

/// Logs the line `message` makes, formatting it only when the host prints
/// `level` (a debug line per request then costs nothing at info).
pub fn log_lazy(level: LogLevel, message: impl FnOnce() -> String) {
    if log_enabled(level) {
        log(level, &message());
    }
}

/// Writes one filter-state value, readable in access logs as
/// `%FILTER_STATE(wasm.<key>:PLAIN)%`.
pub fn set_state(key: &str, value: &str) {
    let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
}

/// The name of this filter instance: Envoy's Wasm `config.name`, which Istio
/// sets to `<namespace>.<WasmPlugin name>`. Used as the `plugin` label so two
/// instances of one filter in one proxy count apart.
pub fn plugin_name() -> String {
    hostcalls::get_property(vec!["plugin_name"])
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A counter defined once per VM; a failure to define it leaves a no-op.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Option<u32>);

impl Counter {
    pub fn define(name: &str) -> Self {
        Self(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// A histogram defined once per VM.
#[derive(Debug, Clone, Copy)]
pub struct Histogram(Option<u32>);

impl Histogram {
    pub fn define(name: &str) -> Self {
        Self(hostcalls::define_metric(MetricType::Histogram, name).ok())
    }

    pub fn record(&self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// Answers the request locally with a JSON body.
pub fn send_json(status: u32, headers: &[(&str, &str)], body: &str) {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
    all.push(("content-type", "application/json"));
    all.push(("cache-control", "no-store"));
    all.extend_from_slice(headers);
    let _ = hostcalls::send_http_response(status, all, Some(body.as_bytes()));
}

/// The first value of `name` (lowercase) in a header snapshot, as
/// `get_http_request_headers_bytes` returns it: one host call for all the
/// headers costs about what two lookups by name do.
pub fn header_in<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// A request header as text, or `None` when absent or not UTF-8.
///
/// The SDK's `get_http_request_header` unwraps the UTF-8 conversion, so a
/// client sending one non-UTF-8 byte would abort the VM; every filter reads
/// headers through here instead.
pub fn request_header(name: &str) -> Option<String> {
    header_text(MapType::HttpRequestHeaders, name)
}

/// A response header as text, or `None` when absent or not UTF-8.
pub fn response_header(name: &str) -> Option<String> {
    header_text(MapType::HttpResponseHeaders, name)
}

fn header_text(map: MapType, name: &str) -> Option<String> {
    let bytes = hostcalls::get_map_value_bytes(map, name).ok().flatten()?;
    String::from_utf8(bytes).ok()
}
