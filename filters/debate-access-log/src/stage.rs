//! The debate-access-log stage: scan a JSON-RPC request body as it streams
//! by (at most the cap, keeping no copy), watch the response for an MCP
//! error, and in the log phase write the record's facts to filter state.

use crate::config::Config;
use crate::record::{self, BodyFacts, Headers};
use crate::response_watch::ResponseWatch;
use crate::sampling::{Outcome, Verdict};
use crate::settings::Settings;
use crate::stats;
use mesh_core::config_error::{self, ConfigError};
use mesh_core::jsonrpc;
use mesh_core::jsonrpc_scan::Scanner;
use mesh_core::stage::{Chunk, Counter, Exchange, Flow, Host, Stage, Step};
use std::cell::RefCell;
use std::rc::Rc;

/// The pluginConfig of a standalone debate-access-log module.
pub fn build(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(config)?;
    Ok(vec![Rc::new(compile(&config, host)?)])
}

pub fn compile(config: &Config, host: &dyn Host) -> Result<LogStage, ConfigError> {
    Ok(LogStage(Rc::new(Shared {
        settings: config.compile()?,
        counters: Counters::define(host),
    })))
}

/// Defined once per VM, shared by its requests.
struct Counters {
    verdicts: Vec<(Verdict, Counter)>,
    body_truncated: Counter,
}

impl Counters {
    fn define(host: &dyn Host) -> Self {
        Self {
            verdicts: stats::VERDICTS
                .iter()
                .map(|(v, _)| (*v, Counter::define(host, &stats::requests_metric(*v))))
                .collect(),
            body_truncated: Counter::define(host, stats::BODY_TRUNCATED),
        }
    }
}

struct Shared {
    settings: Settings,
    counters: Counters,
}

pub struct LogStage(Rc<Shared>);

impl Stage for LogStage {
    fn start(&self) -> Box<dyn Flow> {
        Box::new(LogFlow {
            shared: Rc::clone(&self.0),
            jsonrpc: false,
            body_scan: None,
            response: None,
        })
    }

    fn reads_body_facts(&self) -> bool {
        true
    }
}

struct LogFlow {
    shared: Rc<Shared>,
    /// The request is a JSON-RPC POST with a body.
    jsonrpc: bool,
    /// Scans a JSON-RPC request body as it streams by, up to the cap.
    body_scan: Option<BodyScan>,
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

impl LogFlow {
    /// The facts scanned so far (a body still being read, because the
    /// response came first or the stream reset, yields what its prefix
    /// holds), or those an earlier stage of this module read.
    fn body(&mut self, x: &mut Exchange) -> BodyFacts {
        match self.body_scan.take() {
            Some(scan) => BodyFacts {
                facts: scan.scanner.facts().or_else(|| x.body_facts.take()),
                truncated: !scan.ended || scan.seen > scan.cap,
            },
            None => BodyFacts {
                facts: x.body_facts.take(),
                truncated: false,
            },
        }
    }

    fn outcome(&self, host: &mut dyn Host) -> Outcome {
        let number = |host: &mut dyn Host, path: &[&str]| {
            let bytes = host.property(path)?;
            let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
            Some(u64::from_le_bytes(raw))
        };
        // `:status` from the response headers the module reads anyway (the
        // property costs a host read of its own); the property only when
        // there were no response headers.
        let status = host
            .response_header(":status")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .or_else(|| number(host, &["response", "code"]).and_then(|c| u32::try_from(c).ok()));
        Outcome {
            status,
            flags: number(host, &["response", "flags"]).unwrap_or(0),
            rpc_error: self.response.as_ref().and_then(ResponseWatch::error),
        }
    }
}

impl Flow for LogFlow {
    fn on_request_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step {
        let settings = &self.shared.settings;
        if end || !(settings.wants_body() || settings.watches_responses()) {
            return Step::Continue;
        }
        let method = host
            .request_header(":method")
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default();
        let content_type = host
            .request_header("content-type")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        self.jsonrpc = jsonrpc::is_jsonrpc_post(&method, content_type.as_deref());
        if self.jsonrpc && settings.wants_body() {
            self.body_scan = Some(BodyScan {
                scanner: Scanner::new(settings.pointers.clone()),
                cap: settings.max_body_bytes,
                seen: 0,
                ended: false,
            });
        }
        Step::Continue
    }

    fn request_body_room(&self) -> usize {
        match &self.body_scan {
            Some(scan) if !scan.scanner.is_done() => scan.cap.saturating_sub(scan.seen),
            _ => 0,
        }
    }

    fn on_request_body(
        &mut self,
        _x: &mut Exchange,
        _host: &mut dyn Host,
        chunk: Chunk<'_>,
    ) -> Step {
        // Always Continue: the upload streams on while the scanner reads at
        // most the cap, chunk by chunk, keeping no copy of the body.
        if let Some(scan) = self.body_scan.as_mut() {
            scan.scanner.push(chunk.data);
            // Past the cap only the byte count moves on, so the log can tell
            // a body that was exactly the cap from one that was longer.
            scan.seen = scan.seen.saturating_add(chunk.len);
            scan.ended |= chunk.end;
        }
        Step::Continue
    }

    fn on_request_trailers(&mut self, _x: &mut Exchange, _host: &mut dyn Host) -> Step {
        // Trailers end the body without an end_of_stream data frame.
        if let Some(scan) = self.body_scan.as_mut() {
            scan.ended = true;
        }
        Step::Continue
    }

    fn on_response_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, end: bool) {
        let settings = &self.shared.settings;
        if !self.jsonrpc || end || !settings.watches_responses() {
            return;
        }
        let mut text = |name: &str| {
            host.response_header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let content_type = text("content-type").unwrap_or_default();
        let encoding = text("content-encoding");
        self.response = ResponseWatch::new(
            &content_type,
            encoding.as_deref(),
            settings.max_response_body_bytes,
        );
    }

    fn response_body_room(&self, len: usize) -> usize {
        self.response.as_ref().map_or(0, |watch| watch.room(len))
    }

    fn on_response_body(&mut self, _x: &mut Exchange, _host: &mut dyn Host, chunk: Chunk<'_>) {
        // SSE events reach the client as they come; the watch reads a copy.
        if self.response_body_room(chunk.len) == 0 {
            return;
        }
        if let Some(watch) = self.response.as_mut() {
            watch.push(chunk.data, chunk.len, chunk.end);
        }
    }

    fn on_log(&mut self, x: &mut Exchange, host: &mut dyn Host) {
        let body = self.body(x);
        if let Some(watch) = self.response.as_mut() {
            watch.finish();
        }
        let outcome = self.outcome(host);
        let shared = Rc::clone(&self.shared);
        // Header lookups for the record, from the module's snapshots (also
        // for a request an earlier filter answered before our headers).
        let cell = RefCell::new(&mut *host);
        let mut request = |name: &str| {
            let mut host = cell.try_borrow_mut().ok()?;
            host.request_header(name).map(<[u8]>::to_vec)
        };
        let mut response = |name: &str| {
            let mut host = cell.try_borrow_mut().ok()?;
            host.response_header(name).map(<[u8]>::to_vec)
        };
        let headers = Headers {
            request: &mut request,
            response: &mut response,
        };
        let record = record::record(&shared.settings, headers, &body, outcome);
        for (key, value) in &record.fields {
            host.set_state(key, value);
        }
        if let Some((_, counter)) = shared
            .counters
            .verdicts
            .iter()
            .find(|(v, _)| *v == record.verdict)
        {
            counter.inc(host);
        }
        if body.truncated {
            shared.counters.body_truncated.inc(host);
        }
    }
}
