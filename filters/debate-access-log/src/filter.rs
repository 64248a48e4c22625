//! proxy-wasm glue: parse config once; per request, keep a capped prefix of
//! a JSON-RPC body, and in `on_log` parse it and write the facts to filter
//! state.

use crate::config::{Config, Settings};
use crate::record::{self, BodyFacts, Headers};
use crate::response_watch::ResponseWatch;
use crate::sampling::{Outcome, Verdict};
use crate::stats;
use mesh_core::jsonrpc;
use mesh_core::jsonrpc_scan::Scanner;
use mesh_host::{header_in, Counter};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { settings: None, counters: None })
    });
}}

struct Root {
    settings: Option<Rc<Settings>>,
    counters: Option<Rc<Counters>>,
}

/// Defined once per VM, shared by its requests.
struct Counters {
    verdicts: Vec<(Verdict, Counter)>,
    body_truncated: Counter,
}

impl Counters {
    fn define() -> Self {
        Self {
            verdicts: stats::VERDICTS
                .iter()
                .map(|(v, _)| (*v, Counter::define(&stats::requests_metric(*v))))
                .collect(),
            body_truncated: Counter::define(stats::BODY_TRUNCATED),
        }
    }

    fn count(&self, verdict: Verdict) {
        if let Some((_, counter)) = self.verdicts.iter().find(|(v, _)| *v == verdict) {
            counter.inc();
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        // load_config validates (which compiles); compiling again cannot fail.
        self.settings = mesh_host::load_config::<Config>(self)
            .and_then(|config| config.compile().ok())
            .map(Rc::new);
        if self.counters.is_none() {
            self.counters = Some(Rc::new(Counters::define()));
        }
        self.settings.is_some()
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let settings = self.settings.clone()?;
        let counters = self.counters.clone()?;
        Some(Box::new(Request {
            settings,
            counters,
            jsonrpc: false,
            request_headers: None,
            body_scan: None,
            body: BodyFacts::default(),
            response: None,
        }))
    }
}

struct Request {
    settings: Rc<Settings>,
    counters: Rc<Counters>,
    /// The request is a JSON-RPC POST with a body.
    jsonrpc: bool,
    /// Every request header, read in one host call when the headers pass
    /// (one call costs about what two lookups by name do; the log needs
    /// six or more).
    request_headers: Option<Vec<(String, Vec<u8>)>>,
    /// Scans a JSON-RPC request body as it streams by, up to the cap.
    body_scan: Option<BodyScan>,
    body: BodyFacts,
    /// Looks for an MCP error in the response to a JSON-RPC request.
    response: Option<ResponseWatch>,
}

/// The scanner and how much of the body went by.
struct BodyScan {
    scanner: Scanner,
    cap: usize,
    seen: usize,
    ended: bool,
}

impl Request {
    /// Takes the facts scanned so far, once.
    fn finish_body(&mut self) {
        if let Some(scan) = self.body_scan.take() {
            self.body = BodyFacts {
                facts: scan.scanner.facts(),
                truncated: !scan.ended || scan.seen > scan.cap,
            };
        }
    }

    fn outcome(&self) -> Outcome {
        let number = |path: Vec<&str>| {
            let bytes = self.get_property(path)?;
            let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
            Some(u64::from_le_bytes(raw))
        };
        Outcome {
            status: number(vec!["response", "code"]).and_then(|c| u32::try_from(c).ok()),
            flags: number(vec!["response", "flags"]).unwrap_or(0),
            rpc_error: self.response.as_ref().and_then(ResponseWatch::error),
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers_bytes();
        let settings = Rc::clone(&self.settings);
        let wants_bodies =
            !end_of_stream && (settings.wants_body() || settings.watches_responses());
        if wants_bodies {
            let method = header_in(&headers, ":method").unwrap_or_default();
            let content_type = header_in(&headers, "content-type").map(String::from_utf8_lossy);
            self.jsonrpc =
                jsonrpc::is_jsonrpc_post(&String::from_utf8_lossy(method), content_type.as_deref());
        }
        self.request_headers = Some(headers);
        if !wants_bodies {
            return Action::Continue;
        }
        if self.jsonrpc && self.settings.wants_body() {
            self.body_scan = Some(BodyScan {
                scanner: Scanner::new(self.settings.pointers.clone()),
                cap: self.settings.max_body_bytes,
                seen: 0,
                ended: false,
            });
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        if !self.jsonrpc || end_of_stream || !self.settings.watches_responses() {
            return Action::Continue;
        }
        let header = |name: &str| {
            self.get_http_response_header_bytes(name)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let encoding = header("content-encoding");
        self.response = ResponseWatch::new(
            &content_type,
            encoding.as_deref(),
            self.settings.max_response_body_bytes,
        );
        Action::Continue
    }

    fn on_http_response_body(&mut self, chunk_len: usize, end_of_stream: bool) -> Action {
        // Always Continue: SSE events reach the client as they come.
        let Some(watch) = self.response.as_ref() else {
            return Action::Continue;
        };
        let room = watch.room(chunk_len);
        if room == 0 {
            return Action::Continue;
        }
        let copied = self.get_http_response_body(0, room).unwrap_or_default();
        if let Some(watch) = self.response.as_mut() {
            watch.push(&copied, chunk_len, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, chunk_len: usize, end_of_stream: bool) -> Action {
        // Always Continue: the upload streams on while the scanner reads at
        // most the cap, chunk by chunk, keeping no copy of the body.
        let Some(scan) = self.body_scan.as_ref() else {
            return Action::Continue;
        };
        let room = chunk_len.min(scan.cap.saturating_sub(scan.seen));
        let wanted = room > 0 && !scan.scanner.is_done();
        let copied = if wanted {
            self.get_http_request_body(0, room).unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(scan) = self.body_scan.as_mut() {
            scan.scanner.push(&copied);
            // Past the cap only the byte count moves on, so the log can tell
            // a body that was exactly the cap from one that was longer.
            scan.seen = scan.seen.saturating_add(chunk_len);
            scan.ended |= end_of_stream;
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        // Trailers end the body without an end_of_stream data frame.
        if let Some(scan) = self.body_scan.as_mut() {
            scan.ended = true;
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // Parsed once, here: the facts are only needed now. A body still
        // being read (the response came first, or the stream reset) yields
        // what its prefix holds.
        self.finish_body();
        if let Some(watch) = self.response.as_mut() {
            watch.finish();
        }
        let outcome = self.outcome();
        // Answered by an earlier filter before our headers callback: one
        // snapshot now.
        let snapshot = match self.request_headers.take() {
            Some(headers) => headers,
            None => self.get_http_request_headers_bytes(),
        };
        let mut request = |name: &str| header_in(&snapshot, name).map(<[u8]>::to_vec);
        let mut response = |name: &str| self.get_http_response_header_bytes(name);
        let headers = Headers {
            request: &mut request,
            response: &mut response,
        };
        let record = record::record(&self.settings, headers, &self.body, outcome);
        for (key, value) in &record.fields {
            mesh_host::set_state(key, value);
        }
        self.counters.count(record.verdict);
        if self.body.truncated {
            self.counters.body_truncated.inc();
        }
    }
}
