//! The one proxy-wasm glue: every module (the four standalone filters and
//! the composed `mcp-mesh`) is this root context and this HTTP context around
//! its stages. All host calls of the project are here.
//!
//! A module names its stages in its [`Build`]; the glue loads its
//! pluginConfig once, refuses a bad one with one critical line naming the
//! field, and runs a [`Chain`] of the stages per request.

use mesh_core::chain::Chain;
use mesh_core::config_error::ConfigError;
use mesh_core::stage::{
    header_in, set_header_in, GrpcCall, Host, Level, MetricId, MetricKind, ReadError, SetError,
    SharedStore, Stage,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// What a `.wasm` module is: its pluginConfig compiled into its stages, in
/// phase order. `host` serves properties, shared data and metric definitions.
pub type Build = fn(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError>;

thread_local! {
    /// The module's [`Build`], set once in `proxy_wasm::main!` (the host's
    /// root-context factory is a plain `fn`, so it cannot carry it).
    static BUILD: std::cell::Cell<Option<Build>> = const { std::cell::Cell::new(None) };
}

/// Call from the module's `proxy_wasm::main!`.
pub fn install(build: Build) {
    BUILD.with(|b| b.set(Some(build)));
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { stages: None }) });
}

struct Root {
    stages: Option<Rc<[Rc<dyn Stage>]>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let host = WasmHost::default();
        let built = match BUILD.with(std::cell::Cell::get) {
            Some(build) => build(&bytes, &host),
            None => Err(ConfigError::new("<root>", "module has no stages")),
        };
        match built {
            Ok(stages) => {
                self.stages = Some(stages.into());
                true
            }
            Err(err) => {
                // Envoy prefixes the line with the plugin's name and root id.
                host.log(Level::Critical, &format!("invalid pluginConfig: {err}"));
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let stages = self.stages.as_ref()?;
        Some(Box::new(Http {
            chain: Chain::new(stages),
            host: WasmHost::default(),
        }))
    }
}

struct Http {
    chain: Chain,
    host: WasmHost,
}

fn action(go_on: bool) -> Action {
    if go_on {
        Action::Continue
    } else {
        Action::Pause
    }
}

fn read(buffer: BufferType, offset: usize, len: usize) -> Vec<u8> {
    hostcalls::get_buffer(buffer, offset, len)
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Context for Http {
    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        self.host.tick();
        let message = read(BufferType::GrpcReceiveBuffer, 0, size);
        if self.chain.grpc_response(&mut self.host, status, &message) {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, end: bool) -> Action {
        self.host.tick();
        action(self.chain.request_headers(&mut self.host, end))
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        self.host.tick();
        let mut body = |offset, len| read(BufferType::HttpRequestBody, offset, len);
        action(
            self.chain
                .request_body(&mut self.host, size, end, &mut body),
        )
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        self.host.tick();
        action(self.chain.request_trailers(&mut self.host))
    }

    fn on_http_response_headers(&mut self, _n: usize, end: bool) -> Action {
        self.host.tick();
        self.host.response = None;
        self.chain.response_headers(&mut self.host, end);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        self.host.tick();
        self.host.response_chunk_len = size;
        let mut body = |len| read(BufferType::HttpResponseBody, 0, len);
        self.chain
            .response_body(&mut self.host, size, end, &mut body);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        self.host.tick();
        self.chain.response_trailers(&mut self.host);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.host.tick();
        self.chain.log(&mut self.host);
    }
}

type Snapshot = Vec<(String, Vec<u8>)>;

/// The host, with the request's and the response's headers read once each
/// (one host call for all of them costs about what two lookups by name do)
/// and kept current with this module's own edits.
#[derive(Default)]
struct WasmHost {
    request: Option<Snapshot>,
    response: Option<Snapshot>,
    /// The clock, read once per callback (every stage of one callback sees
    /// the same instant).
    now: std::cell::Cell<Option<u64>>,
    /// Bytes of the response body chunk being handed over.
    response_chunk_len: usize,
}

impl WasmHost {
    /// A new host callback began.
    fn tick(&mut self) {
        self.now.set(None);
    }
}

fn snapshot(slot: &mut Option<Snapshot>, map: MapType) -> &mut Snapshot {
    slot.get_or_insert_with(|| hostcalls::get_map_bytes(map).unwrap_or_default())
}

/// Keeps a snapshot that was read current with the module's own edit.
fn edit(headers: Option<&mut Snapshot>, name: &str, value: Option<&str>) {
    if let Some(headers) = headers {
        set_header_in(headers, name, value);
    }
}

impl Host for WasmHost {
    fn now_ns(&self) -> u64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.now.set(Some(now));
        now
    }

    fn request_header(&mut self, name: &str) -> Option<&[u8]> {
        header_in(
            snapshot(&mut self.request, MapType::HttpRequestHeaders),
            name,
        )
    }

    fn request_headers(&mut self) -> &[(String, Vec<u8>)] {
        snapshot(&mut self.request, MapType::HttpRequestHeaders)
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
        edit(self.request.as_mut(), name, value);
    }

    fn response_header(&mut self, name: &str) -> Option<&[u8]> {
        header_in(
            snapshot(&mut self.response, MapType::HttpResponseHeaders),
            name,
        )
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
        edit(self.response.as_mut(), name, value);
    }

    fn replace_response_chunk(&mut self, data: &[u8]) {
        // Envoy replaces a body buffer only when the range covers all of it.
        let _ = hostcalls::set_buffer(
            BufferType::HttpResponseBody,
            0,
            self.response_chunk_len,
            data,
        );
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_state(&mut self, key: &str, value: &str) {
        let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
    }

    fn reply(&mut self, status: u32, headers: &[(&str, &str)], body: &str) {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
        all.push(("content-type", "application/json"));
        all.push(("cache-control", "no-store"));
        all.extend_from_slice(headers);
        let _ = hostcalls::send_http_response(status, all, Some(body.as_bytes()));
    }

    fn call_grpc(&mut self, call: GrpcCall<'_>) -> Option<u32> {
        hostcalls::dispatch_grpc_call(
            call.cluster,
            call.service,
            call.method,
            Vec::new(),
            Some(call.message),
            Duration::from_millis(call.timeout_ms),
        )
        .ok()
    }

    fn store(&self) -> &dyn SharedStore {
        &HostStore
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> MetricId {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::Gauge => MetricType::Gauge,
        };
        MetricId(hostcalls::define_metric(kind, name).ok())
    }

    fn add_metric(&self, id: MetricId, n: u64) {
        if let Some(id) = id.0 {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn record_metric(&self, id: MetricId, value: u64) {
        if let Some(id) = id.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn log_enabled(&self, level: Level) -> bool {
        crate::log_enabled(to_host(level))
    }

    fn log(&self, level: Level, message: &str) {
        let _ = hostcalls::log(to_host(level), message);
    }
}

fn to_host(level: Level) -> LogLevel {
    match level {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
        Level::Critical => LogLevel::Critical,
    }
}

/// Envoy shared data (one map per vm_id, shared by every worker).
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, ReadError> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(bytes), Some(cas))) => Ok(Some((bytes, cas))),
            Ok(_) => Ok(None),
            Err(_) => Err(ReadError),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Other),
        }
    }
}
