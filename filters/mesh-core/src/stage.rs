//! The one shape every filter takes: a host-free **stage**.
//!
//! A stage is a filter's pluginConfig compiled once per VM ([`Stage`]); per
//! request it starts a small state machine ([`Flow`]) that is fed the
//! request's events (headers, body chunks, trailers, the rate-limit
//! service's answer, response headers and body, the log phase) and answers
//! each with a [`Step`]. Everything it needs from Envoy goes through
//! [`Host`]: the request's header snapshot (read once per request, shared by
//! every stage of a module), header edits, local replies, filter state,
//! shared data, gRPC calls, metrics and logs.
//!
//! Nothing here calls proxy-wasm. `mesh_host::glue` is the one
//! implementation of [`Host`] and the one place that runs stages in an
//! Envoy `HttpContext`: a standalone module runs one stage, the composed
//! `mcp-mesh` module runs the enabled ones in phase order (auth, rate limit,
//! access log, token usage) in one context. [`crate::mock_host`] runs them
//! natively in tests.

use crate::identity::state;
use crate::jsonrpc::{RequestFacts, MAX_FACT_LEN};
use crate::log_value::clean;
use crate::mcp::Call;

/// What a stage tells the module after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on: the next stage gets the event, then the request moves on.
    Continue,
    /// Hold the request: waiting for more body, or for a call this stage
    /// made. The stage resumes it by answering a later event with
    /// `Continue`. Later stages still see body chunks (they only observe).
    Pause,
    /// The stage answered the request itself ([`Host::reply`]); no later
    /// stage sees it, except in the log phase.
    Replied,
}

/// A piece of a body, as Envoy hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The first bytes of the new data, at most the room the stage asked
    /// for (see [`Flow::request_body_room`]); may be shorter than `len`.
    pub data: &'a [u8],
    /// How many new bytes arrived in all.
    pub len: usize,
    /// This is the last piece of the body.
    pub end: bool,
}

/// Facts one stage leaves for the later stages of the same module, in memory
/// (a standalone module has one stage and hands facts on in filter state).
#[derive(Debug, Default)]
pub struct Exchange {
    /// A later stage of this module reads [`Exchange::body_facts`] (the
    /// access log does): an earlier stage then leaves them here instead of
    /// writing them to filter state.
    pub facts_reader: bool,
    /// The JSON-RPC facts of the request body, once a stage read them
    /// (org-rate-limit does when a cost rule needs them): the access log of
    /// a request rejected at its body still names the call.
    pub body_facts: Option<RequestFacts>,
    /// A 2026-07-28 request's call as its headers name it, left by a stage
    /// that holds those headers to the body (mcp-guard, `enforce`): later
    /// stages may decide on it at header time, because a body that
    /// disagrees is refused before it reaches the service.
    pub header_call: Option<Call>,
}

impl Exchange {
    /// A stage answered a request at its body, which the access log's own
    /// scan then never sees: hand over what the body said, so the log line
    /// still names the call. In memory when the access log is a later stage
    /// of this module, else in filter state (only then: each write costs
    /// about 3,700 instructions).
    pub fn hand_over(&mut self, host: &mut dyn Host, facts: RequestFacts) {
        if self.facts_reader {
            self.body_facts = Some(facts);
            return;
        }
        for (key, value) in [(state::METHOD, &facts.method), (state::TOOL, &facts.tool)] {
            if let Some(v) = value
                .as_deref()
                .and_then(|v| clean(v.as_bytes(), MAX_FACT_LEN))
            {
                host.set_state(key, &v);
            }
        }
        if let Some(id) = facts.id_text() {
            host.set_state(state::JSONRPC_ID, &id);
        }
    }
}

/// Log levels, numbered as proxy-wasm numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// A metric the host defined; `None` when the definition failed (then every
/// update is a no-op).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricId(pub Option<u32>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
    /// Set with [`Host::record_metric`]; one value shared by every worker.
    Gauge,
}

/// Shared data could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    CasMismatch,
    Other,
}

/// Envoy's shared data: one map per `vm_id`, shared by every worker, with a
/// compare-and-swap token per key.
pub trait SharedStore {
    /// Value and cas of `key`; `Ok(None)` when missing.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, ReadError>;
    /// Writes `value` if `cas` still matches (`cas == 0`, or a missing key:
    /// unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

/// A gRPC call to make (the rate-limit service).
#[derive(Debug, Clone, Copy)]
pub struct GrpcCall<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub method: &'a str,
    pub message: &'a [u8],
    pub timeout_ms: u64,
}

/// Everything a stage may ask of Envoy. Every call is infallible from the
/// stage's side: a failed host call is a missing value or a no-op, never a
/// panic.
pub trait Host {
    /// Wall-clock time in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
    /// The first value of request header `name` (lowercase). The module reads
    /// all request headers in one host call, once per request, and keeps its
    /// own edits in that snapshot, so a later stage sees an earlier one's.
    fn request_header(&mut self, name: &str) -> Option<&[u8]>;
    /// Every request header, in order (the same snapshot).
    fn request_headers(&mut self) -> &[(String, Vec<u8>)];
    /// Sets (`Some`, replacing every copy) or removes (`None`) a request header.
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    /// The first value of response header `name`, from one snapshot per
    /// response.
    fn response_header(&mut self, name: &str) -> Option<&[u8]>;
    /// Sets (`Some`) or removes (`None`) a response header.
    fn set_response_header(&mut self, name: &str, value: Option<&str>);
    /// Replaces the response body chunk being handed over
    /// ([`Flow::on_response_body`] only): the client gets `data` instead.
    fn replace_response_chunk(&mut self, data: &[u8]);
    /// A host property such as `["source", "address"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Writes one filter-state value, readable in access logs as
    /// `%FILTER_STATE(wasm.<key>:PLAIN)%`.
    fn set_state(&mut self, key: &str, value: &str);
    /// Answers the request locally with a JSON body (`content-type` and
    /// `cache-control: no-store` are added).
    fn reply(&mut self, status: u32, headers: &[(&str, &str)], body: &str);
    /// Sends a gRPC call; its answer comes back as [`Flow::on_grpc_response`]
    /// to the stage that made it. `None` when the host refused it (unknown
    /// cluster).
    fn call_grpc(&mut self, call: GrpcCall<'_>) -> Option<u32>;
    fn store(&self) -> &dyn SharedStore;
    fn define_metric(&self, kind: MetricKind, name: &str) -> MetricId;
    fn add_metric(&self, id: MetricId, n: u64);
    fn record_metric(&self, id: MetricId, value: u64);
    /// True when the host prints lines at `level`: format debug lines only then.
    fn log_enabled(&self, level: Level) -> bool;
    fn log(&self, level: Level, message: &str);
}

/// Logs the line `message` makes, formatting it only when the host prints
/// `level`.
pub fn log_lazy(host: &dyn Host, level: Level, message: impl FnOnce() -> String) {
    if host.log_enabled(level) {
        host.log(level, &message());
    }
}

/// A filter's pluginConfig, compiled once per VM. `start` begins one request.
pub trait Stage {
    fn start(&self) -> Box<dyn Flow>;

    /// This stage reads [`Exchange::body_facts`] left by an earlier one.
    fn reads_body_facts(&self) -> bool {
        false
    }
}

/// One request as one stage sees it. Every method has a default that does
/// nothing and goes on, so a stage implements only the events it uses.
pub trait Flow {
    fn on_request_headers(&mut self, x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step;

    /// How many more request-body bytes this stage wants to read (0: none).
    /// The module copies the largest room any stage asks for, once.
    fn request_body_room(&self) -> usize {
        0
    }

    fn on_request_body(
        &mut self,
        _x: &mut Exchange,
        _host: &mut dyn Host,
        _chunk: Chunk<'_>,
    ) -> Step {
        Step::Continue
    }

    /// Trailers end the body without an end-of-stream data frame.
    fn on_request_trailers(&mut self, _x: &mut Exchange, _host: &mut dyn Host) -> Step {
        Step::Continue
    }

    /// The answer to a call this stage made: gRPC `status` (0 is OK) and the
    /// response message.
    fn on_grpc_response(
        &mut self,
        _x: &mut Exchange,
        _host: &mut dyn Host,
        _status: u32,
        _message: &[u8],
    ) -> Step {
        Step::Continue
    }

    fn on_response_headers(&mut self, _x: &mut Exchange, _host: &mut dyn Host, _end: bool) {}

    /// How many bytes of the next response chunk this stage wants.
    fn response_body_room(&self, _len: usize) -> usize {
        0
    }

    /// Response chunks always go on to the client as they come.
    fn on_response_body(&mut self, _x: &mut Exchange, _host: &mut dyn Host, _chunk: Chunk<'_>) {}

    fn on_response_trailers(&mut self, _x: &mut Exchange, _host: &mut dyn Host) {}

    /// The log phase, before Envoy's access loggers run: every stage gets
    /// it, also one whose request an earlier stage answered.
    fn on_log(&mut self, _x: &mut Exchange, _host: &mut dyn Host) {}
}

/// The first value of `name` (lowercase) in a header snapshot.
pub fn header_in<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// Sets (`Some`, replacing every copy) or removes (`None`) `name` in a
/// header snapshot: what a host does to its copy when a stage edits.
pub fn set_header_in(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: Option<&str>) {
    headers.retain(|(k, _)| k != name);
    if let Some(v) = value {
        headers.push((name.to_string(), v.as_bytes().to_vec()));
    }
}

/// A request header as text; absent or not UTF-8 is `None`.
pub fn header_text<'a>(host: &'a mut dyn Host, name: &str) -> Option<&'a str> {
    host.request_header(name)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// A counter defined once per VM.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter(pub MetricId);

impl Counter {
    pub fn define(host: &dyn Host, name: &str) -> Self {
        Self(host.define_metric(MetricKind::Counter, name))
    }

    pub fn inc(self, host: &dyn Host) {
        host.add_metric(self.0, 1);
    }
}
