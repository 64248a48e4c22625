//! The mcp-guard stage, per request:
//!
//! 1. **Headers.** A 2026-07-28 POST (`MCP-Protocol-Version` names no
//!    handshake version) in `enforce` mode is decided on its headers: the
//!    call they name is authorized at once, and a denial is answered there
//!    with `"id": null` (the official client puts its own id on an error
//!    answering its POST). The call is left for later stages
//!    ([`Exchange::header_call`], filter state `mcp_header_check=enforced`).
//! 2. **Body.** The body is held until its message closes (or the bound)
//!    and read once. A modern request's headers are held to it
//!    ([`mcp::check`]): a disagreement gets the SDK's 400 with the real id,
//!    and the service has seen the headers at most, never a byte of the
//!    body (Envoy resets the upstream request). A handshake-era request is
//!    authorized here, every message of a batch, or the batch refused.
//! 3. **Response.** A `tools/list`, `prompts/list` or `resources/list`
//!    answer loses what the caller may not call ([`ListFilter`]).

use crate::config::{Batches, Config, HeaderCheck, Overflow};
use crate::list_filter::{Framing, ListFilter, ListKind};
use crate::rules::{Caller, Rules, Verdict};
use mesh_core::config_error::{self, ConfigError};
use mesh_core::error_body::{rpc_code, rpc_error};
use mesh_core::identity::{header as identity_header, state};
use mesh_core::jsonrpc::{self, RequestFacts, MAX_FACT_LEN};
use mesh_core::jsonrpc_scan::{Pointers, Scanner};
use mesh_core::log_value::clean;
use mesh_core::mcp::{self, BodyMeta, Call, Era, HeaderFacts, Mismatch};
use mesh_core::metrics::labeled;
use mesh_core::stage::{header_in, Chunk, Counter, Exchange, Flow, Host, Level, Stage, Step};
use serde_json::{json, Value};
use std::rc::Rc;

/// The pluginConfig of a standalone mcp-guard module.
pub fn build(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(config)?;
    Ok(vec![Rc::new(compile(config, host))])
}

pub fn compile(config: Config, host: &dyn Host) -> GuardStage {
    let rules = Rules::new(&config);
    let counters = Counters::define(host, &config);
    let pointers = Pointers::parse(mcp::pointer::ALL).unwrap_or_default();
    host.log(
        Level::Info,
        &format!(
            "configured: header_check {:?}, {} rules, default {:?}",
            config.header_check,
            config.rules.len(),
            config.default
        ),
    );
    GuardStage(Rc::new(Shared {
        config,
        rules,
        counters,
        pointers,
    }))
}

/// Every counter exists at 0 from configuration time.
struct Counters {
    /// `mcp_auth_requests_total{decision="denied",reason="tool_denied"}`:
    /// api-key-auth's counter, under a reason of its own.
    denied: Counter,
    /// `mcp_guard_header_mismatch_total{reason, decision}`: the field that
    /// disagreed, and `refused` or `logged`.
    mismatches: Vec<(&'static str, Counter)>,
    /// `mcp_guard_batches_total{decision}`: refused, checked.
    batches_refused: Counter,
    batches_checked: Counter,
    /// `mcp_guard_list_entries_removed_total`, `mcp_guard_list_overflow_total{decision}`
    /// (`block` or `pass`, the configured fail mode).
    list_removed: Counter,
    list_overflow: Counter,
}

impl Counters {
    fn define(host: &dyn Host, config: &Config) -> Self {
        let plugin = mesh_core::metrics::plugin_name(host);
        let action = match config.header_check {
            HeaderCheck::Enforce => "refused",
            HeaderCheck::Log | HeaderCheck::Off => "logged",
        };
        let overflow = match config.lists.on_overflow {
            Overflow::Block => "block",
            Overflow::Pass => "pass",
        };
        let batches = |d: &str| {
            Counter::define(
                host,
                &labeled("mcp_guard_batches_total", &[("decision", d)]),
            )
        };
        Self {
            denied: Counter::define(
                host,
                &labeled(
                    "mcp_auth_requests_total",
                    &[
                        ("decision", "denied"),
                        ("reason", "tool_denied"),
                        ("plugin", &plugin),
                    ],
                ),
            ),
            mismatches: Mismatch::LABELS
                .iter()
                .map(|&field| {
                    let name = labeled(
                        "mcp_guard_header_mismatch_total",
                        &[("reason", field), ("decision", action)],
                    );
                    (field, Counter::define(host, &name))
                })
                .collect(),
            batches_refused: batches("refused"),
            batches_checked: batches("checked"),
            list_removed: Counter::define(host, "mcp_guard_list_entries_removed_total"),
            list_overflow: Counter::define(
                host,
                &labeled("mcp_guard_list_overflow_total", &[("decision", overflow)]),
            ),
        }
    }

    fn mismatch(&self, host: &dyn Host, m: Mismatch) {
        if let Some((_, c)) = self.mismatches.iter().find(|(f, _)| *f == m.label()) {
            c.inc(host);
        }
    }
}

struct Shared {
    config: Config,
    rules: Rules,
    counters: Counters,
    pointers: Pointers,
}

pub struct GuardStage(Rc<Shared>);

impl Stage for GuardStage {
    fn start(&self) -> Box<dyn Flow> {
        Box::new(GuardFlow {
            shared: Rc::clone(&self.0),
            headers: HeaderFacts::default(),
            era: Era::Handshake,
            caller: Caller::default(),
            enforced: false,
            header_mismatch: None,
            scanner: None,
            scanned: 0,
            lists: Vec::new(),
            list: None,
            id: Value::Null,
        })
    }
}

struct GuardFlow {
    shared: Rc<Shared>,
    headers: HeaderFacts,
    era: Era,
    caller: Caller,
    /// A modern request in `enforce` mode: decided on its headers, which the
    /// body must now bear out.
    enforced: bool,
    /// What was wrong with the headers alone; refused once the body's id is known.
    header_mismatch: Option<Mismatch>,
    scanner: Option<Scanner>,
    scanned: usize,
    /// The list methods the request called (their answers get filtered).
    lists: Vec<ListKind>,
    list: Option<ListFilter<'static>>,
    /// The body's JSON-RPC id, once read.
    id: Value,
}

impl GuardFlow {
    fn config(&self) -> &Config {
        &self.shared.config
    }

    fn caller(headers: &[(String, Vec<u8>)]) -> Caller {
        let text = |name: &str| {
            header_in(headers, name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Caller {
            role: text(identity_header::ROLE),
            plan: text(identity_header::PLAN),
            org: text(identity_header::ORG_ID),
            key_id: text(identity_header::KEY_ID),
            scopes: text(identity_header::SCOPES)
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn decide(&self, call: &Call) -> Verdict {
        self.shared.rules.decide(call, &self.caller)
    }

    /// Records a verdict; answers 403 when it denies.
    fn apply(&self, host: &mut dyn Host, verdict: &Verdict, id: &Value) -> Option<Step> {
        host.set_state(state::AUTHZ_RULE, &verdict.rule);
        if verdict.allowed {
            host.set_state(state::AUTHZ_RESULT, "allowed");
            return None;
        }
        host.set_state(state::AUTHZ_RESULT, "denied");
        self.shared.counters.denied.inc(host);
        let body = forbidden(id, &verdict.rule);
        self.deny(host, &body);
        Some(Step::Replied)
    }

    fn deny(&self, host: &mut dyn Host, body: &str) {
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\"",
            self.config().realm
        );
        host.reply(403, &[("www-authenticate", &challenge)], body);
    }

    /// Answers a request whose MCP headers are wrong, or only logs it.
    fn mismatch(&self, host: &mut dyn Host, m: Mismatch, id: &Value) -> Option<Step> {
        self.shared.counters.mismatch(host, m);
        host.set_state(state::HEADER_CHECK, &format!("mismatch:{}", m.label()));
        if self.config().header_check != HeaderCheck::Enforce {
            host.log(
                Level::Info,
                &format!("MCP headers disagree with the body: {}", m.message()),
            );
            return None;
        }
        let status = if m == Mismatch::Unverifiable {
            413
        } else {
            400
        };
        host.reply(status, &[], &rpc_error(id, m.code(), &m.message(), None));
        Some(Step::Replied)
    }

    /// The body is read as far as it will be: check it, authorize it.
    fn on_body(&mut self, x: &mut Exchange, host: &mut dyn Host) -> Step {
        let Some(scanner) = self.scanner.take() else {
            return Step::Continue;
        };
        let facts = scanner.facts();
        let step = self.judge_body(host, facts.as_ref());
        if let (Step::Replied, Some(facts)) = (step, facts) {
            x.hand_over(host, facts);
        }
        step
    }

    fn judge_body(&mut self, host: &mut dyn Host, facts: Option<&RequestFacts>) -> Step {
        // A batch has no one id (the SDK answers it with `null` too).
        let id = facts
            .filter(|f| !f.batch)
            .and_then(|f| f.id.clone())
            .unwrap_or(Value::Null);
        self.id = id.clone();
        if let Some(f) = facts {
            record_body(host, f, self.enforced);
        }
        if self.era == Era::Modern && self.config().header_check != HeaderCheck::Off {
            if let Err(m) = self.check_modern(facts) {
                if let Some(step) = self.mismatch(host, m, &id) {
                    return step;
                }
            } else {
                host.set_state(state::HEADER_CHECK, "ok");
            }
        }
        if self.enforced {
            // Decided on the headers, which the body bore out.
            return Step::Continue;
        }
        let Some(facts) = facts else {
            return Step::Continue;
        };
        self.authorize_body(host, facts).unwrap_or(Step::Continue)
    }

    fn check_modern(&self, facts: Option<&RequestFacts>) -> Result<(), Mismatch> {
        if let Some(m) = self.header_mismatch {
            return Err(m);
        }
        let facts = facts.ok_or(Mismatch::Unverifiable)?;
        if facts.batch {
            return Err(Mismatch::Batch);
        }
        let message = facts.messages.first().ok_or(Mismatch::Unverifiable)?;
        mcp::check(&self.headers, message)
    }

    /// A handshake-era body (or a modern one not enforced): every message
    /// must be allowed, a batch must be allowed at all.
    fn authorize_body(&mut self, host: &mut dyn Host, facts: &RequestFacts) -> Option<Step> {
        let id = facts.id.clone().unwrap_or(Value::Null);
        if facts.batch {
            let version = self.headers.version.as_deref();
            let policy =
                self.config()
                    .batches
                    .unwrap_or(if mcp::batch_allowed(self.era, version) {
                        Batches::Check
                    } else {
                        Batches::Refuse
                    });
            if policy == Batches::Refuse {
                self.shared.counters.batches_refused.inc(host);
                host.set_state(state::AUTHZ_RESULT, "denied");
                host.set_state(state::AUTHZ_RULE, "batches");
                let body = rpc_error(
                    &Value::Null,
                    mcp::code::INVALID_REQUEST,
                    "JSON-RPC batches are not accepted here",
                    None,
                );
                host.reply(400, &[], &body);
                return Some(Step::Replied);
            }
            self.shared.counters.batches_checked.inc(host);
        }
        self.lists = facts
            .messages
            .iter()
            .filter_map(|m| m.method.as_deref().and_then(ListKind::of))
            .collect();
        if self.shared.rules.allow_all() {
            return None;
        }
        let mut decided: Option<Verdict> = None;
        for message in &facts.messages {
            if !message.settled {
                // Cut at the bound: a later key could still change the call.
                let verdict = Verdict {
                    allowed: false,
                    rule: "max_body_bytes".into(),
                };
                return self.apply(host, &verdict, &id);
            }
            let Some(call) = Call::of(message) else {
                continue;
            };
            let verdict = self.decide(&call);
            if !verdict.allowed {
                let id = message.id.clone().unwrap_or(id);
                return self.apply(host, &verdict, &id);
            }
            decided.get_or_insert(verdict);
        }
        match decided {
            Some(verdict) => self.apply(host, &verdict, &id),
            None => None,
        }
    }

    fn filters_lists(&self) -> bool {
        self.config().lists.filter && !self.shared.rules.allow_all()
    }
}

/// True for a request on a configured non-MCP path, spelled in normal form.
fn skips(prefixes: &[String], headers: &[(String, Vec<u8>)]) -> bool {
    if prefixes.is_empty() {
        return false;
    }
    header_in(headers, ":path")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(mesh_core::path::normal_form)
        .is_some_and(|path| prefixes.iter().any(|p| path.starts_with(p.as_str())))
}

/// The 403 body: a JSON-RPC error that names the rule, never a client value.
fn forbidden(id: &Value, rule: &str) -> String {
    rpc_error(
        id,
        rpc_code::FORBIDDEN,
        "this caller may not make this MCP call",
        Some(json!({"code": "tool_denied", "rule": rule})),
    )
}

/// The facts a request names, for the access log: capped, and a URI without
/// its query (which may carry secrets).
fn record_name(host: &mut dyn Host, call: &Call) {
    let Some(name) = &call.name else {
        return;
    };
    let name = if call.method == "resources/read" {
        name.split(['?', '#']).next().unwrap_or_default()
    } else {
        name.as_str()
    };
    if let Some(v) = clean(name.as_bytes(), MAX_FACT_LEN) {
        host.set_state(state::NAME, &v);
    }
}

fn record(host: &mut dyn Host, key: &str, value: Option<&str>) {
    if let Some(v) = value.and_then(|v| clean(v.as_bytes(), jsonrpc::MAX_FACT_LEN)) {
        host.set_state(key, &v);
    }
}

/// What only the body says: client name and version, and (unless the
/// checked headers said so already) the protocol version and the name.
fn record_body(host: &mut dyn Host, facts: &RequestFacts, headers_said: bool) {
    let Some(first) = facts.messages.first() else {
        return;
    };
    let meta = BodyMeta::from_pointers(&first.pointers);
    record(host, state::CLIENT_NAME, meta.client_name.as_deref());
    record(host, state::CLIENT_VERSION, meta.client_version.as_deref());
    if headers_said {
        return;
    }
    record(
        host,
        state::PROTOCOL_VERSION,
        meta.envelope_version
            .as_deref()
            .or(meta.initialize_version.as_deref()),
    );
    if let Some(call) = Call::of(first) {
        record_name(host, &call);
    }
}

impl Flow for GuardFlow {
    fn on_request_headers(&mut self, x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step {
        let headers = host.request_headers();
        if skips(&self.shared.config.skip_paths, headers) {
            return Step::Continue;
        }
        let method = header_in(headers, ":method").unwrap_or_default();
        let content_type =
            header_in(headers, "content-type").and_then(|v| std::str::from_utf8(v).ok());
        if !jsonrpc::is_jsonrpc_post(std::str::from_utf8(method).unwrap_or(""), content_type) {
            return Step::Continue;
        }
        self.headers = HeaderFacts::read(headers);
        self.caller = Self::caller(headers);
        self.era = self.headers.era();
        record(
            host,
            state::PROTOCOL_VERSION,
            self.headers.version.as_deref(),
        );
        let enforce = self.config().header_check == HeaderCheck::Enforce;
        if self.era == Era::Modern && enforce {
            match mcp::check_headers(&self.headers) {
                Err(m) => self.header_mismatch = Some(m),
                Ok(()) => {
                    if let Some(call) = self.headers.call() {
                        self.enforced = true;
                        host.set_state(state::HEADER_CHECK, "enforced");
                        record_name(host, &call);
                        if !self.shared.rules.allow_all() {
                            let verdict = self.decide(&call);
                            if let Some(step) = self.apply(host, &verdict, &Value::Null) {
                                return step;
                            }
                        }
                        if let Some(kind) = ListKind::of(&call.method) {
                            self.lists.push(kind);
                            if self.filters_lists() {
                                // The answer must be readable to be filtered.
                                host.set_request_header("accept-encoding", None);
                            }
                        }
                        x.header_call = Some(call);
                    }
                }
            }
        }
        if end {
            // No body: nothing to hold the headers to, nothing more to read.
            if let Some(m) = self.header_mismatch {
                return self
                    .mismatch(host, m, &Value::Null)
                    .unwrap_or(Step::Continue);
            }
            return Step::Continue;
        }
        // Proxy-Wasm in Envoy only delivers the body once the headers went
        // on; the body itself is held until it is checked.
        self.scanner = Some(Scanner::new(self.shared.pointers.clone()));
        Step::Continue
    }

    fn request_body_room(&self) -> usize {
        match self.scanner {
            Some(_) => self.config().max_body_bytes.saturating_sub(self.scanned),
            None => 0,
        }
    }

    fn on_request_body(&mut self, x: &mut Exchange, host: &mut dyn Host, chunk: Chunk<'_>) -> Step {
        let cap = self.config().max_body_bytes;
        let Some(scanner) = self.scanner.as_mut() else {
            return Step::Continue;
        };
        scanner.push(chunk.data);
        self.scanned = self.scanned.saturating_add(chunk.data.len());
        let settled = scanner.is_done() || self.scanned >= cap;
        if !settled && !chunk.end {
            return Step::Pause;
        }
        self.on_body(x, host)
    }

    fn on_request_trailers(&mut self, x: &mut Exchange, host: &mut dyn Host) -> Step {
        self.on_body(x, host)
    }

    fn on_response_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, _end: bool) {
        if self.lists.is_empty() || !self.filters_lists() {
            return;
        }
        let text = |host: &mut dyn Host, name: &str| {
            host.response_header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_ascii_lowercase)
        };
        if text(host, ":status").as_deref() != Some("200") {
            return;
        }
        let framing = match text(host, "content-type") {
            Some(ct) if ct.starts_with("text/event-stream") => Framing::Sse,
            Some(ct) if ct.starts_with("application/json") => Framing::Json,
            _ => return,
        };
        let encoded = text(host, "content-encoding").is_some_and(|e| e != "identity");
        let shared = Rc::clone(&self.shared);
        let caller = self.caller.clone();
        let mut filter = ListFilter::new(
            self.lists.clone(),
            framing,
            &self.config().lists,
            self.id.clone(),
            Box::new(move |call: &Call| shared.rules.decide(call, &caller).allowed),
        );
        if encoded {
            // Counted; `block` replaces the first chunk with the error.
            filter.unreadable();
        }
        // The filtered body has another length.
        host.set_response_header("content-length", None);
        self.list = Some(filter);
    }

    fn response_body_room(&self, len: usize) -> usize {
        if self.list.is_some() {
            len
        } else {
            0
        }
    }

    fn on_response_body(&mut self, _x: &mut Exchange, host: &mut dyn Host, chunk: Chunk<'_>) {
        let Some(filter) = self.list.as_mut() else {
            return;
        };
        if let Some(out) = filter.push(chunk.data, chunk.end) {
            host.replace_response_chunk(&out);
        }
    }

    fn on_log(&mut self, _x: &mut Exchange, host: &mut dyn Host) {
        let Some(filter) = &self.list else {
            return;
        };
        let counters = &self.shared.counters;
        host.add_metric(counters.list_removed.0, filter.tally.removed);
        if filter.tally.overflow {
            counters.list_overflow.inc(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::chain::Chain;
    use mesh_core::mock_host::MockHost;
    use mesh_core::stage::set_header_in;

    const RULES: &str = r#"{"rules": [
        {"name": "rounds", "tools": ["run_debate_round"], "allow": {"roles": ["owner", "moderator"]}},
        {"name": "judges", "prompts": ["judge_*"], "allow": {"scopes": ["debates:judge"]}}
    ]}"#;

    fn modern_body(method: &str, name: Option<&str>, id: u32) -> Vec<u8> {
        let name = name.map_or(String::new(), |n| format!(r#""name":"{n}","#));
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{{name}"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"mcp","version":"2.3.0"}}}}}}}}"#
        )
        .into_bytes()
    }

    fn handshake_body(method: &str, name: Option<&str>, id: u32) -> Vec<u8> {
        let params = name.map_or("{}".to_string(), |n| format!(r#"{{"name":"{n}"}}"#));
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
            .into_bytes()
    }

    fn setup(config: &str, role: &str, extra: &[(&str, &str)]) -> (Chain, MockHost) {
        let mut headers = vec![
            (":method", "POST"),
            (":path", "/mcp"),
            ("content-type", "application/json"),
            ("x-mcp-role", role),
        ];
        headers.extend_from_slice(extra);
        let host = MockHost::with_headers(&headers);
        let stages = build(config.as_bytes(), &host).unwrap_or_default();
        (Chain::new(&stages), host)
    }

    fn modern(method: &str, name: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("mcp-protocol-version", "2026-07-28".to_string()),
            ("mcp-method", method.to_string()),
        ];
        if let Some(n) = name {
            h.push(("mcp-name", n.to_string()));
        }
        h
    }

    fn with<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        h.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// Headers, then the whole body in one piece: did the request go on?
    fn send(chain: &mut Chain, host: &mut MockHost, body: &[u8]) -> bool {
        if !chain.request_headers(host, false) {
            return false;
        }
        let mut read =
            |off: usize, len: usize| body.get(off..off + len).unwrap_or_default().to_vec();
        chain.request_body(host, body.len(), true, &mut read)
    }

    fn denied_counter(host: &MockHost) -> String {
        let plugin = mesh_core::metrics::plugin_name(host);
        labeled(
            "mcp_auth_requests_total",
            &[
                ("decision", "denied"),
                ("reason", "tool_denied"),
                ("plugin", &plugin),
            ],
        )
    }

    fn reply_json(host: &MockHost) -> Value {
        serde_json::from_str(&host.replies.last().unwrap().body).unwrap()
    }

    #[test]
    fn a_modern_call_is_decided_on_its_headers() {
        let h = modern("tools/call", Some("run_debate_round"));
        let (mut c, mut host) = setup(RULES, "user", &with(&h));
        // Refused before any body: the client puts its own id on `null`.
        assert!(!c.request_headers(&mut host, false));
        let r = host.replies.last().unwrap();
        assert_eq!(r.status, 403);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.contains("insufficient_scope")));
        let v = reply_json(&host);
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["data"]["rule"], "rounds");
        assert_eq!(
            host.state.get("mcp_authz_result").map(String::as_str),
            Some("denied")
        );
        assert_eq!(host.metric(&denied_counter(&host)), 1);

        let (mut c, mut host) = setup(RULES, "owner", &with(&h));
        assert!(send(
            &mut c,
            &mut host,
            &modern_body("tools/call", Some("run_debate_round"), 4)
        ));
        assert_eq!(
            host.state.get("mcp_header_check").map(String::as_str),
            Some("ok")
        );
        assert_eq!(
            host.state.get("mcp_name").map(String::as_str),
            Some("run_debate_round")
        );
        assert_eq!(
            host.state.get("mcp_client_name").map(String::as_str),
            Some("mcp")
        );
        assert_eq!(
            host.state.get("mcp_protocol_version").map(String::as_str),
            Some("2026-07-28")
        );
    }

    #[test]
    fn headers_that_lie_are_refused_with_the_real_id() {
        // Allowed by its headers, but the body calls the owner-only tool.
        let h = modern("tools/call", Some("get_debate"));
        let (mut c, mut host) = setup(RULES, "user", &with(&h));
        assert!(c.request_headers(&mut host, false));
        assert!(!send_body(
            &mut c,
            &mut host,
            &modern_body("tools/call", Some("run_debate_round"), 9)
        ));
        let r = host.replies.last().unwrap();
        assert_eq!(r.status, 400);
        let v = reply_json(&host);
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (Value::from(9), Value::from(-32020))
        );
        assert_eq!(
            host.state.get("mcp_header_check").map(String::as_str),
            Some("mismatch:name")
        );
    }

    fn send_body(chain: &mut Chain, host: &mut MockHost, body: &[u8]) -> bool {
        let mut read =
            |off: usize, len: usize| body.get(off..off + len).unwrap_or_default().to_vec();
        chain.request_body(host, body.len(), true, &mut read)
    }

    #[test]
    fn a_modern_post_without_mcp_method_waits_for_its_id_then_is_refused() {
        let h = [("mcp-protocol-version", "2026-07-28")];
        let (mut c, mut host) = setup(RULES, "owner", &h);
        assert!(c.request_headers(&mut host, false));
        assert!(!send_body(
            &mut c,
            &mut host,
            &modern_body("tools/list", None, 5)
        ));
        let v = reply_json(&host);
        assert_eq!(v["id"], 5);
        assert_eq!(v["error"]["message"], "mcp-method header is missing");
    }

    #[test]
    fn log_mode_lets_a_mismatch_through_and_decides_on_the_body() {
        let config = RULES.replacen('{', r#"{"header_check": "log", "#, 1);
        let h = modern("tools/call", Some("get_debate"));
        let (mut c, mut host) = setup(&config, "user", &with(&h));
        // Not decided on the headers in log mode: the body's tool is denied.
        assert!(!send(
            &mut c,
            &mut host,
            &modern_body("tools/call", Some("run_debate_round"), 3)
        ));
        let v = reply_json(&host);
        assert_eq!(
            (host.replies.last().unwrap().status, v["id"].clone()),
            (403, Value::from(3))
        );
        assert_eq!(
            host.metric(&labeled(
                "mcp_guard_header_mismatch_total",
                &[("reason", "name"), ("decision", "logged")]
            )),
            1
        );
    }

    #[test]
    fn handshake_calls_are_decided_on_the_body_with_their_id() {
        let (mut c, mut host) = setup(RULES, "user", &[]);
        assert!(!send(
            &mut c,
            &mut host,
            &handshake_body("tools/call", Some("run_debate_round"), 12)
        ));
        assert_eq!(reply_json(&host)["id"], 12);
        let (mut c, mut host) = setup(RULES, "user", &[]);
        assert!(send(
            &mut c,
            &mut host,
            &handshake_body("tools/call", Some("get_debate"), 13)
        ));
    }

    #[test]
    fn batches_are_refused_from_2025_06_18_and_checked_before() {
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_debate"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_debate_round"}}]"#;
        let v = [("mcp-protocol-version", "2025-06-18")];
        let (mut c, mut host) = setup(RULES, "owner", &v);
        assert!(!send(&mut c, &mut host, batch));
        assert_eq!(host.replies.last().unwrap().status, 400);
        assert_eq!(reply_json(&host)["error"]["code"], -32600);

        let v = [("mcp-protocol-version", "2025-03-26")];
        let (mut c, mut host) = setup(RULES, "user", &v);
        assert!(!send(&mut c, &mut host, batch));
        // The second message is the denied one.
        assert_eq!(
            (
                host.replies.last().unwrap().status,
                reply_json(&host)["id"].clone()
            ),
            (403, Value::from(2))
        );
        let (mut c, mut host) = setup(RULES, "owner", &v);
        assert!(send(&mut c, &mut host, batch));
        assert_eq!(
            host.metric(&labeled(
                "mcp_guard_batches_total",
                &[("decision", "checked")]
            )),
            1
        );
    }

    #[test]
    fn a_modern_batch_is_refused() {
        let h = modern("tools/call", Some("get_debate"));
        let (mut c, mut host) = setup(RULES, "owner", &with(&h));
        let mut batch = b"[".to_vec();
        batch.extend(modern_body("tools/call", Some("get_debate"), 1));
        batch.push(b']');
        assert!(!send(&mut c, &mut host, &batch));
        assert_eq!(reply_json(&host)["error"]["code"], -32600);
    }

    #[test]
    fn a_body_cut_at_the_bound_is_not_authorized() {
        let config = RULES.replacen('{', r#"{"max_body_bytes": 1024, "#, 1);
        let (mut c, mut host) = setup(&config, "owner", &[]);
        let padding = "x".repeat(2000);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"p":"{padding}"}},"name":"get_debate"}}}}"#
        );
        assert!(!send(&mut c, &mut host, body.as_bytes()));
        assert_eq!(
            host.state.get("mcp_authz_rule").map(String::as_str),
            Some("max_body_bytes")
        );
    }

    #[test]
    fn tools_list_answers_lose_what_the_caller_may_not_call() {
        let h = modern("tools/list", None);
        let (mut c, mut host) = setup(RULES, "user", &with(&h));
        assert!(send(&mut c, &mut host, &modern_body("tools/list", None, 2)));
        host.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), b"99".to_vec()),
        ];
        c.response_headers(&mut host, false);
        assert!(host
            .response_headers
            .iter()
            .all(|(k, _)| k != "content-length"));
        let body = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"get_debate"},{"name":"run_debate_round"}]}}"#;
        let mut read = |len: usize| body.get(..len).unwrap_or_default().to_vec();
        c.response_body(&mut host, body.len(), true, &mut read);
        let sent = String::from_utf8(host.replaced_chunks.last().unwrap().clone()).unwrap();
        assert!(
            sent.contains("get_debate") && !sent.contains("run_debate_round"),
            "{sent}"
        );
        c.log(&mut host);
        assert_eq!(host.metric("mcp_guard_list_entries_removed_total"), 1);
    }

    #[test]
    fn skip_paths_pass_only_in_normal_form() {
        let config = RULES.replacen('{', r#"{"skip_paths": ["/v1/"], "#, 1);
        let big = format!(
            r#"{{"model":"m","messages":[{{"content":"{}"}}]}}"#,
            "w ".repeat(40_000)
        );
        for (path, passes) in [
            ("/v1/chat/completions", true),
            ("/v1/../mcp", false),
            ("/v1/%2e%2e/mcp", false),
        ] {
            let (mut c, mut host) = setup(&config, "user", &[]);
            set_header_in(&mut host.request_headers, ":path", Some(path));
            assert_eq!(send(&mut c, &mut host, big.as_bytes()), passes, "{path}");
        }
    }

    #[test]
    fn every_counter_exists_from_configuration() {
        let (_, host) = setup(RULES, "user", &[]);
        let names = host.metric_names.borrow();
        assert!(names.contains(&denied_counter(&host)));
        assert_eq!(
            names
                .iter()
                .filter(|n| n.ends_with("mcp_guard_header_mismatch_total"))
                .count(),
            8
        );
        assert!(names.contains(&labeled(
            "mcp_guard_list_overflow_total",
            &[("decision", "block")]
        )));
    }
}
