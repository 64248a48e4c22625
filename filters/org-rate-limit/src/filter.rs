//! proxy-wasm glue: reads the few headers the rules need, charges the bucket
//! through shared data, applies the decision.

use crate::config::{Config, Mode};
use crate::decide::{self, Decision, LocalReply};
use crate::rules::{Classified, Rules, Target};
use crate::store::{self, ReadError, SetError, SharedStore};
use mesh_core::identity::state;
use mesh_core::jsonrpc::{self, RequestFacts};
use mesh_core::metrics::labeled;
use mesh_core::token_bucket::Quota;
use mesh_host::Counter;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

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
}

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
        Self {
            by_plan,
            overflow: Counter::define("mcp_ratelimit_bucket_overflow_total"),
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
    config: Config,
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
        let config = Rc::try_unwrap(config).unwrap_or_else(|rc| (*rc).clone());
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
            waiting_for_body: false,
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
    /// A cost rule needs the JSON-RPC method / tool: decide in the body.
    waiting_for_body: bool,
    response_headers: Vec<(&'static str, String)>,
}

impl Context for Request {}

impl Request {
    fn now_ns(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// A request header as text. The SDK's `get_http_request_header` panics
    /// on non-UTF-8 values (clients control them); read bytes instead.
    /// Non-UTF-8 counts as absent.
    fn header(&self, name: &str) -> Option<String> {
        let bytes = self.get_http_request_header_bytes(name)?;
        String::from_utf8(bytes).ok()
    }

    fn body_cap(&self) -> usize {
        self.shared.config.max_body_bytes
    }

    /// Charges the bucket and applies the decision.
    fn run(&mut self, cost: u64, facts: Option<&RequestFacts>) -> Action {
        let Some(target) = self.target.clone() else {
            return Action::Continue;
        };
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let local = decide::charge_local(
            &HostStore,
            &target,
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
            local.result.map(|o| o.allowed),
        );
        if let Err(failure) = local.result {
            mesh_host::log(
                LogLevel::Warn,
                &format!("shared data failed ({failure:?}): {}", decision.as_str()),
            );
        }
        if decision == Decision::ShadowLimited {
            self.log_shadow(&target, cost);
        }
        let quota = local.result.ok().map(|o| o.quota);
        self.finish(decision, &target.policy, quota, facts)
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
    fn finish(
        &mut self,
        decision: Decision,
        policy: &str,
        quota: Option<Quota>,
        facts: Option<&RequestFacts>,
    ) -> Action {
        self.shared.counters.inc(policy, decision);
        mesh_host::set_state(state::RATELIMIT_RESULT, decision.as_str());
        if let Some(q) = &quota {
            mesh_host::set_state(state::RATELIMIT_REMAINING, &q.remaining.to_string());
        }
        if !decision.rejects() {
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
        let null = Value::Null;
        let id = match facts.and_then(|f| f.id.as_ref()) {
            Some(id) => Some(id),
            None if self.jsonrpc => Some(&null),
            None => None,
        };
        if let Some(reply) = decide::reply(decision, policy, quota.as_ref(), id) {
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
        let min = shared.rules.min_cost(&self.path, &self.method);
        let outcome =
            store::peek(&HostStore, &target.key, &target.limit, min, self.now_ns()).ok()?;
        if outcome.allowed || shared.config.mode == Mode::Shadow {
            return None;
        }
        Some(self.finish(Decision::Limited, &target.policy, Some(outcome.quota), None))
    }

    /// The body (up to the cap) is here: cost it and decide.
    fn decide_with_body(&mut self, body_size: usize) -> Action {
        self.waiting_for_body = false;
        let take = body_size.min(self.body_cap());
        let facts = self
            .get_http_request_body(0, take)
            .and_then(|bytes| jsonrpc::parse_prefix(&bytes));
        let cost = self
            .shared
            .rules
            .cost(&self.path, &self.method, facts.as_ref());
        self.run(cost, facts.as_ref())
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
        match shared
            .rules
            .classify(org.as_deref(), plan.as_deref(), &self.path)
        {
            Classified::NoIdentity => self.finish(Decision::NoIdentity, NO_PLAN, None, None),
            Classified::Charge(target) => {
                self.target = Some(target);
                let needs_body = self.jsonrpc
                    && !end_of_stream
                    && self.body_cap() > 0
                    && shared
                        .rules
                        .needs_body(&self.path, &self.method, Some("application/json"));
                if !needs_body {
                    let cost = shared.rules.cost(&self.path, &self.method, None);
                    return self.run(cost, None);
                }
                if let Some(action) = self.precheck_rejects() {
                    return action;
                }
                // Proxy-Wasm in Envoy only delivers the body once the headers
                // went on; the body itself is held until the decision.
                self.waiting_for_body = true;
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.waiting_for_body {
            return Action::Continue;
        }
        if !end_of_stream && body_size < self.body_cap() {
            // Envoy buffers the body until we have enough (max_body_bytes).
            return Action::Pause;
        }
        self.decide_with_body(body_size)
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        if !self.waiting_for_body {
            return Action::Continue;
        }
        let cap = self.body_cap();
        self.decide_with_body(cap)
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            self.set_http_response_header(name, Some(&value));
        }
        Action::Continue
    }
}
