//! proxy-wasm glue: reads the few headers the rules need, charges the bucket
//! through shared data, applies the decision.

use crate::client::{self, ClientSource};
use crate::config::{Config, Limiter, Mode};
use crate::decide::{self, Decision, LocalReply};
use crate::global::Facts;
use crate::rls;
use crate::rules::{Classified, Rules, Target};
use crate::store::{self, ReadError, SetError, SharedStore};
use mesh_core::identity::state;
use mesh_core::jsonrpc::{self, RequestFacts};
use mesh_core::jsonrpc_scan::{Pointers, Scanner};
use mesh_core::log_value::clean;
use mesh_core::metrics::labeled;
use mesh_core::token_bucket::Quota;
use mesh_host::Counter;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { shared: None }) });
}}

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

/// `mcp_ratelimit_requests_total{decision, plan}`: plans come from the config,
/// so the label set is bounded; organizations are never a label.
struct Counters {
    by_plan: BTreeMap<String, Vec<Counter>>,
    overflow: Counter,
    /// `mcp_ratelimit_service_errors_total{reason}`: rate-limit service calls
    /// that gave no answer (the request then went the failure_mode way).
    service_errors: Vec<(&'static str, Counter)>,
}

const SERVICE_ERRORS: [&str; 4] = ["timeout", "unavailable", "error", "bad_response"];

const NO_PLAN: &str = "none";

impl Counters {
    fn define(rules: &Rules) -> Self {
        let mut by_plan = BTreeMap::new();
        for plan in rules
            .policies()
            .into_iter()
            .chain(std::iter::once(NO_PLAN.to_string()))
        {
            let counters = Decision::ALL
                .iter()
                .map(|d| {
                    Counter::define(&labeled(
                        "mcp_ratelimit_requests_total",
                        &[("decision", d.as_str()), ("plan", &plan)],
                    ))
                })
                .collect();
            by_plan.insert(plan, counters);
        }
        let service_errors = SERVICE_ERRORS
            .iter()
            .map(|reason| {
                let name = labeled("mcp_ratelimit_service_errors_total", &[("reason", reason)]);
                (*reason, Counter::define(&name))
            })
            .collect();
        Self {
            by_plan,
            overflow: Counter::define("mcp_ratelimit_bucket_overflow_total"),
            service_errors,
        }
    }

    fn service_error(&self, reason: &str) {
        if let Some((_, c)) = self.service_errors.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }

    fn inc(&self, plan: &str, decision: Decision) {
        let counters = self.by_plan.get(plan).or_else(|| self.by_plan.get(NO_PLAN));
        if let Some(c) = counters.and_then(|c| c.get(decision.index())) {
            c.inc();
        }
    }
}

struct Shared {
    config: Rc<Config>,
    rules: Rules,
    counters: Counters,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = mesh_host::load_config::<Config>(self) else {
            return false;
        };
        let rules = Rules::new(&config);
        let counters = Counters::define(&rules);
        store::ensure_registry(&HostStore);
        self.shared = Some(Rc::new(Shared {
            config,
            rules,
            counters,
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Request {
            shared,
            path: String::new(),
            method: String::new(),
            jsonrpc: false,
            target: None,
            scanner: None,
            scanned: 0,
            body_facts: None,
            jsonrpc_id: None,
            pending_global: None,
            response_headers: Vec::new(),
        }))
    }
}

struct Request {
    shared: Rc<Shared>,
    path: String,
    method: String,
    /// A POST whose body may be JSON-RPC (its errors are JSON-RPC errors).
    jsonrpc: bool,
    target: Option<Target>,
    /// Set while a cost rule needs the JSON-RPC method / tool and the
    /// request waits for its body: reads it as Envoy buffers it, chunk by
    /// chunk (never the whole buffer again), up to `max_body_bytes`.
    scanner: Option<Scanner>,
    /// Bytes of the buffered body fed to the scanner so far.
    scanned: usize,
    /// Method and tool of the body read, for the access log of a rejection.
    body_facts: Option<(Option<String>, Option<String>)>,
    /// The JSON-RPC id, once the body was read (echoed in error answers).
    jsonrpc_id: Option<Value>,
    /// Policy name of a request waiting for the rate-limit service, and when
    /// the call was sent.
    pending_global: Option<(String, u64)>,
    response_headers: Vec<(&'static str, String)>,
}

impl Context for Request {
    /// The rate-limit service answered (or failed, or timed out).
    fn on_grpc_call_response(&mut self, _token: u32, status_code: u32, response_size: usize) {
        let Some((policy, sent_ns)) = self.pending_global.take() else {
            return;
        };
        let answer = if status_code == 0 {
            let body = self
                .get_grpc_call_response_body(0, response_size)
                .unwrap_or_default();
            match rls::decode_response(&body) {
                Ok(r) if r.overall == rls::Code::OverLimit => Ok((false, r.quota())),
                Ok(r) if r.overall == rls::Code::Ok => Ok((true, r.quota())),
                _ => Err(ServiceError {
                    reason: "bad_response",
                    grpc: None,
                }),
            }
        } else {
            // Envoy reports a call cut by its deadline as DEADLINE_EXCEEDED
            // (4), once the stream is up as UNAVAILABLE (14, from the 504 of
            // its own timeout), and once the service sent its response
            // headers and stalled as INTERNAL (13; measured in Envoy 1.40).
            // The clock the host gives us is coarse (timeouts measured
            // 12-24 ms for a 20 ms deadline) while a refused or reset
            // connection fails within a millisecond or two, so an UNAVAILABLE
            // or INTERNAL after half the deadline counts as a timeout. This only picks the
            // `reason` label; the failure mode applies either way. (The SDK's
            // get_grpc_status would tell, but panics on a non-UTF-8 message.)
            let timeout_ns = self
                .shared
                .config
                .global
                .as_ref()
                .map_or(0, |g| g.timeout_ms.saturating_mul(1_000_000));
            let elapsed = self.now_ns().saturating_sub(sent_ns);
            let reason = match status_code {
                4 => "timeout",
                13 | 14 if elapsed >= timeout_ns / 2 => "timeout",
                14 => "unavailable",
                _ => "error",
            };
            Err(ServiceError {
                reason,
                grpc: Some((status_code, elapsed / 1_000_000)),
            })
        };
        let action = self.global_answer(&policy, answer);
        if action == Action::Continue {
            self.resume_http_request();
        }
    }
}

impl Request {
    fn now_ns(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// A request header as text; non-UTF-8 counts as absent.
    fn header(&self, name: &str) -> Option<String> {
        mesh_host::request_header(name)
    }

    fn body_cap(&self) -> usize {
        self.shared.config.max_body_bytes
    }

    /// Charges the request's cost where the config says and applies the
    /// decision (or pauses for the rate-limit service).
    fn run(&mut self, cost: u64, facts: Option<&RequestFacts>) -> Action {
        let Some(target) = self.target.clone() else {
            return Action::Continue;
        };
        match self.shared.config.limiter {
            Limiter::Local => self.run_local(&target, cost, true),
            Limiter::Global => self.call_global(&target, cost, facts),
            Limiter::LocalThenGlobal => {
                // The cheap local check first; only what it lets through asks
                // the service (whose answer is the one counted).
                let local = self.run_local(&target, cost, false);
                if local == Action::Continue {
                    self.call_global(&target, cost, facts)
                } else {
                    local
                }
            }
        }
    }

    /// The local bucket. `final_say`: record and apply every decision; else
    /// (local_then_global) only a rejection is recorded and applied.
    fn run_local(&mut self, target: &Target, cost: u64, final_say: bool) -> Action {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let local = decide::charge_local(
            &HostStore,
            target,
            cost,
            self.now_ns(),
            config.max_cas_retries,
            config.max_buckets,
        );
        if local.overflowed {
            shared.counters.overflow.inc();
        }
        let decision = decide::decide(
            config.mode,
            config.failure_mode,
            local.result.ok().map(|o| o.allowed),
        );
        if let Err(failure) = local.result {
            mesh_host::log(
                LogLevel::Warn,
                &format!("shared data failed ({failure:?}): {}", decision.as_str()),
            );
        }
        if decision == Decision::ShadowLimited {
            self.log_shadow(target, cost);
        }
        if !final_say && !decision.rejects() {
            return Action::Continue;
        }
        let quota = local.result.ok().map(|o| o.quota);
        self.finish(decision, &target.policy, quota)
    }

    /// Asks the rate-limit service; the request waits for its answer.
    fn call_global(&mut self, target: &Target, cost: u64, facts: Option<&RequestFacts>) -> Action {
        let shared = Rc::clone(&self.shared);
        let Some(global) = shared.config.global.as_ref() else {
            return self.finish(Decision::Allowed, &target.policy, None);
        };
        let descriptors = global.descriptors(&Facts {
            target,
            http_method: &self.method,
            body: facts,
        });
        if cost == 0 || descriptors.is_empty() {
            return self.finish(Decision::Allowed, &target.policy, None);
        }
        let message = rls::encode_request(&global.domain, &descriptors, cost);
        let call = self.dispatch_grpc_call(
            &global.cluster,
            rls::SERVICE,
            rls::METHOD,
            Vec::new(),
            Some(&message),
            Duration::from_millis(global.timeout_ms),
        );
        match call {
            Ok(_token) => {
                self.pending_global = Some((target.policy.clone(), self.now_ns()));
                Action::Pause
            }
            // Unknown cluster, no healthy host: failure_mode.
            Err(_) => self.global_answer(
                &target.policy,
                Err(ServiceError {
                    reason: "unavailable",
                    grpc: None,
                }),
            ),
        }
    }

    /// Applies the service's answer: `Ok((allowed, quota))` or an error reason.
    fn global_answer(
        &mut self,
        policy: &str,
        answer: Result<(bool, Option<Quota>), ServiceError>,
    ) -> Action {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let failure_mode = config
            .global
            .as_ref()
            .and_then(|g| g.failure_mode)
            .unwrap_or(config.failure_mode);
        let (allowed, quota) = match &answer {
            Ok((allowed, quota)) => (Some(*allowed), *quota),
            Err(e) => {
                shared.counters.service_error(e.reason);
                (None, None)
            }
        };
        let decision = decide::decide(config.mode, failure_mode, allowed);
        if let Err(ServiceError { reason, grpc }) = answer {
            let detail = grpc.map_or(String::new(), |(status, ms)| {
                format!(" (grpc status {status} after {ms} ms)")
            });
            mesh_host::log(
                LogLevel::Warn,
                &format!("rate-limit service {reason}{detail}: {}", decision.as_str()),
            );
        }
        if decision == Decision::ShadowLimited {
            if let Some(target) = self.target.clone() {
                self.log_shadow(&target, 0);
            }
        }
        self.finish(decision, policy, quota)
    }

    fn log_shadow(&self, target: &Target, cost: u64) {
        mesh_host::log(
            LogLevel::Info,
            &format!(
                "shadow: would limit org={} plan={} class={} cost={cost}",
                target.org.as_deref().unwrap_or("-"),
                target.policy,
                target.class
            ),
        );
    }

    /// Records the decision (counter, filter state), then answers or lets
    /// the request through.
    fn finish(&mut self, decision: Decision, policy: &str, quota: Option<Quota>) -> Action {
        self.shared.counters.inc(policy, decision);
        mesh_host::set_state(state::RATELIMIT_RESULT, decision.as_str());
        if let Some(q) = &quota {
            mesh_host::set_state(state::RATELIMIT_REMAINING, &q.remaining.to_string());
        }
        if decision.rejects() {
            // A rejected body never reaches the access-log filter behind us:
            // hand over what it said, so the line still names the call (only
            // then: each filter-state write costs about 3,700 instructions).
            if let Some((method, tool)) = self.body_facts.take() {
                record_facts(&[(state::METHOD, method), (state::TOOL, tool)]);
            }
        } else {
            self.response_headers = decide::forwarded_headers(
                self.shared.config.response_headers,
                decision,
                policy,
                quota.as_ref(),
            );
            return Action::Continue;
        }
        // JSON-RPC errors echo the id when the body was read, else carry
        // `"id": null` (JSON-RPC 2.0: id not determinable).
        let id = match &self.jsonrpc_id {
            Some(id) => Some(id.clone()),
            None if self.jsonrpc => Some(Value::Null),
            None => None,
        };
        if let Some(reply) = decide::reply(decision, policy, quota.as_ref(), id.as_ref()) {
            send(&reply);
        }
        Action::Pause
    }

    /// Before reading the body: if the bucket cannot afford even the
    /// cheapest cost this request could have, answer now, so a client that
    /// is over its limit never reaches the upstream.
    fn precheck_rejects(&mut self) -> Option<Action> {
        let target = self.target.clone()?;
        let shared = Rc::clone(&self.shared);
        if shared.config.limiter == Limiter::Global {
            return None;
        }
        let min = shared.rules.min_cost(&self.path, &self.method);
        let outcome =
            store::peek(&HostStore, &target.key, &target.limit, min, self.now_ns()).ok()?;
        if outcome.allowed || shared.config.mode == Mode::Shadow {
            return None;
        }
        Some(self.finish(Decision::Limited, &target.policy, Some(outcome.quota)))
    }

    /// Feeds the scanner what Envoy buffered since the last call (up to the
    /// cap); true once nothing more could change the facts.
    fn scan_body(&mut self, buffered: usize) -> bool {
        let upto = buffered.min(self.body_cap());
        if upto > self.scanned {
            let chunk = self
                .get_http_request_body(self.scanned, upto - self.scanned)
                .unwrap_or_default();
            if let Some(scanner) = self.scanner.as_mut() {
                scanner.push(&chunk);
            }
            self.scanned = upto;
        }
        self.scanned >= self.body_cap() || self.scanner.as_ref().is_none_or(Scanner::is_done)
    }

    /// The body (up to the cap, or up to where the facts settled) is here:
    /// cost it and decide.
    fn decide_with_body(&mut self) -> Action {
        let facts = self.scanner.take().and_then(|s| s.facts());
        self.jsonrpc_id = facts.as_ref().and_then(|f| f.id.clone());
        let cost = self
            .shared
            .rules
            .cost(&self.path, &self.method, facts.as_ref());
        self.body_facts = facts.as_ref().map(|f| (f.method.clone(), f.tool.clone()));
        self.run(cost, facts.as_ref())
    }
}

/// Why the rate-limit service gave no answer: the `reason` label of
/// `mcp_ratelimit_service_errors_total`, and the gRPC status and elapsed
/// milliseconds when the call itself failed (for the warning line).
struct ServiceError {
    reason: &'static str,
    grpc: Option<(u32, u64)>,
}

/// Body facts, cleaned, in their access-log keys.
fn record_facts(facts: &[(&str, Option<String>)]) {
    for (key, value) in facts {
        if let Some(v) = value
            .as_deref()
            .and_then(|v| clean(v.as_bytes(), jsonrpc::MAX_FACT_LEN))
        {
            mesh_host::set_state(key, &v);
        }
    }
}

fn send(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    mesh_host::send_json(reply.status, &headers, &reply.body);
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let shared = Rc::clone(&self.shared);
        self.path = self.header(":path").unwrap_or_default();
        self.method = self.header(":method").unwrap_or_default();
        let org = self.header(&shared.config.org_header);
        let plan = match org {
            Some(_) => self.header(&shared.config.plan_header),
            None => None,
        };
        if self.method.eq_ignore_ascii_case("POST") {
            let content_type = self.header("content-type");
            self.jsonrpc = jsonrpc::is_jsonrpc_post(&self.method, content_type.as_deref());
        }
        // Anonymous requests are told apart by client (read only for them).
        let client = if shared.rules.has_identity(org.as_deref()) {
            String::new()
        } else {
            let anonymous = &shared.config.anonymous_client;
            let raw = match anonymous.from {
                ClientSource::None => None,
                ClientSource::SourceAddress => self
                    .get_property(vec!["source", "address"])
                    .and_then(|v| String::from_utf8(v).ok()),
                ClientSource::Header => self.header(&anonymous.header),
            };
            client::client_key(anonymous, raw.as_deref())
        };
        match shared
            .rules
            .classify(org.as_deref(), plan.as_deref(), &self.path, &client)
        {
            Classified::NoIdentity => self.finish(Decision::NoIdentity, NO_PLAN, None),
            Classified::Charge(target) => {
                self.target = Some(target);
                let global_needs_body = shared.config.limiter != Limiter::Local
                    && shared
                        .config
                        .global
                        .as_ref()
                        .is_some_and(|g| g.needs_body());
                let needs_body = self.jsonrpc
                    && !end_of_stream
                    && self.body_cap() > 0
                    && (global_needs_body
                        || shared.rules.needs_body(
                            &self.path,
                            &self.method,
                            Some("application/json"),
                        ));
                if !needs_body {
                    let cost = shared.rules.cost(&self.path, &self.method, None);
                    return self.run(cost, None);
                }
                if let Some(action) = self.precheck_rejects() {
                    return action;
                }
                // Proxy-Wasm in Envoy only delivers the body once the headers
                // went on; the body itself is held until the decision.
                self.scanner = Some(Scanner::new(Pointers::default()));
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.pending_global.is_some() {
            // Decided on the facts, waiting for the rate-limit service: the
            // rest of the body waits too (Continue would release it upstream
            // before the answer).
            return Action::Pause;
        }
        if self.scanner.is_none() {
            return Action::Continue;
        }
        if !self.scan_body(body_size) && !end_of_stream {
            // Envoy buffers the body until the facts settle or the cap.
            return Action::Pause;
        }
        self.decide_with_body()
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        if self.pending_global.is_some() {
            return Action::Pause;
        }
        if self.scanner.is_none() {
            return Action::Continue;
        }
        self.decide_with_body()
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            self.set_http_response_header(name, Some(&value));
        }
        Action::Continue
    }
}
