//! proxy-wasm glue: recognize LLM calls, watch their bodies go by, count.
//!
//! Every body callback returns `Continue`: chunks go on to the client as they
//! arrive; the filter only copies them into the bounded readers of mesh-core.
//! A call is reported once, at the end of the response (metrics and filter
//! state for the access log), or in `on_log` when the stream was cut.

use crate::config::Config;
use crate::report::{self, Call, Labels, Update};
use crate::request_model::ModelScanner;
use crate::route;
use mesh_core::llm_usage::{Api, Outcome, ReadLimits, UsageReader};
use mesh_host::{Counter, Histogram};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None, metrics: None }) });
}}

/// Label caps and metric ids of this VM (one per Envoy worker), shared by
/// its requests.
struct Metrics {
    labels: Labels,
    counters: HashMap<String, Counter>,
    histograms: HashMap<String, Histogram>,
}

impl Metrics {
    fn apply(&mut self, updates: Vec<Update>) {
        for update in updates {
            match update {
                Update::Counter(name, n) => self
                    .counters
                    .entry(name)
                    .or_insert_with_key(|name| Counter::define(name))
                    .add(n),
                Update::Histogram(name, v) => self
                    .histograms
                    .entry(name)
                    .or_insert_with_key(|name| Histogram::define(name))
                    .record(v),
            }
        }
    }
}

struct Root {
    config: Option<Rc<Config>>,
    metrics: Option<Rc<RefCell<Metrics>>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.config = mesh_host::load_config::<Config>(self);
        let Some(config) = &self.config else {
            return false;
        };
        // Istio puts the workload's name in the node metadata.
        let service = config.service.clone().unwrap_or_else(|| {
            self.get_property(vec!["node", "metadata", "WORKLOAD_NAME"])
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        });
        self.metrics = Some(Rc::new(RefCell::new(Metrics {
            labels: Labels::new(
                &mesh_core::metrics::sanitize_label_value(&service),
                config.max_orgs,
                config.max_models,
            ),
            counters: HashMap::new(),
            histograms: HashMap::new(),
        })));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            config: self.config.clone()?,
            metrics: self.metrics.clone()?,
            call: None,
        }))
    }
}

struct Request {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
    /// `None` for everything that is not an LLM call.
    call: Option<LlmCall>,
}

struct LlmCall {
    api: Api,
    provider: String,
    org: Option<String>,
    path_model: Option<String>,
    /// Scans the request body for `model` while the budget lasts.
    scanner: Option<ModelScanner>,
    request_budget: usize,
    status: u32,
    reader: Option<UsageReader>,
    reported: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        mesh_host::request_header(name)
    }

    /// Records the finished call once: metrics, then filter state.
    fn report(&mut self, complete: bool) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.reported {
            return;
        }
        call.reported = true;
        let status = call.status;
        let outcome = match call.reader.as_mut() {
            Some(reader) => reader.finish(status, complete),
            // No response headers: upstream reset or connect failure.
            None => Outcome::Error,
        };
        let state = call.reader.as_ref().map(UsageReader::state);
        let request_model = call
            .path_model
            .as_deref()
            .or_else(|| call.scanner.as_ref().and_then(ModelScanner::model));
        let facts = Call {
            org: call.org.as_deref(),
            provider: &call.provider,
            request_model,
            response_model: state.and_then(|s| s.response_model()),
            usage: state.and_then(|s| s.usage()),
            outcome: Some(outcome),
            skipped_events: call.reader.as_ref().map_or(0, UsageReader::skipped_events),
            status,
        };
        if let Ok(mut metrics) = self.metrics.try_borrow_mut() {
            let updates = metrics.labels.updates(&facts);
            metrics.apply(updates);
        }
        for (key, value) in report::filter_state(&facts) {
            mesh_host::set_state(key, &value);
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let Some(path) = self.header(":path") else {
            return Action::Continue;
        };
        let Some(matched) = route::match_path(&self.config, &path) else {
            return Action::Continue;
        };
        // Generations are POSTs; `GET /v1/chat/completions` lists stored ones.
        if self.header(":method").as_deref() != Some("POST") {
            return Action::Continue;
        }
        let authority = self.header(":authority");
        let provider = route::provider(&self.config, &matched, authority.as_deref());
        if self.config.force_identity_encoding {
            // Compressed responses cannot be read; providers honour identity.
            self.set_http_request_header("accept-encoding", Some("identity"));
        }
        let scan = matched.path_model.is_none()
            && !end_of_stream
            && self.config.max_request_body_bytes > 0;
        self.call = Some(LlmCall {
            api: matched.api,
            provider,
            org: self.header(&self.config.org_header),
            path_model: matched.path_model,
            scanner: scan.then(ModelScanner::new),
            request_budget: self.config.max_request_body_bytes,
            status: 0,
            reader: None,
            reported: false,
        });
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let Some(call) = self.call.as_ref() else {
            return Action::Continue;
        };
        let wanted = match &call.scanner {
            Some(scanner) if !scanner.done() => body_size.min(call.request_budget),
            _ => 0,
        };
        if wanted == 0 {
            return Action::Continue;
        }
        let chunk = self.get_http_request_body(0, wanted).unwrap_or_default();
        if let Some(call) = self.call.as_mut() {
            call.request_budget = call.request_budget.saturating_sub(wanted);
            if let Some(scanner) = call.scanner.as_mut() {
                scanner.push(&chunk);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        if self.call.is_none() {
            return Action::Continue;
        }
        let status = mesh_host::response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = mesh_host::response_header("content-type");
        let content_encoding = mesh_host::response_header("content-encoding");
        let limits = ReadLimits {
            max_json_bytes: self.config.max_response_body_bytes,
            max_event_bytes: self.config.max_sse_event_bytes,
        };
        if let Some(call) = self.call.as_mut() {
            call.status = status;
            call.reader = Some(UsageReader::new(
                call.api,
                content_type.as_deref(),
                content_encoding.as_deref(),
                limits,
            ));
        }
        if end_of_stream {
            self.report(true);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let wanted = match self.call.as_ref().and_then(|c| c.reader.as_ref()) {
            Some(reader) => reader.wanted(body_size),
            None => return Action::Continue,
        };
        let chunk = if wanted > 0 {
            self.get_http_response_body(0, wanted).unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(reader) = self.call.as_mut().and_then(|c| c.reader.as_mut()) {
            if wanted > 0 {
                reader.push(&chunk);
            } else {
                reader.skip(body_size);
            }
        }
        if end_of_stream {
            self.report(true);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        self.report(true);
        Action::Continue
    }

    fn on_log(&mut self) {
        // Still open here: the stream was cut (reset, timeout, client gone).
        self.report(false);
    }
}
