//! The org-rate-limit stage: reads the few headers the rules need, charges
//! the bucket in shared data (or asks the rate-limit service), and applies
//! the decision. When a cost rule needs the JSON-RPC method or tool, the
//! request body is held (up to `max_body_bytes`) and scanned chunk by chunk
//! until the facts settle; nothing of it reaches the upstream before the
//! decision.

use crate::client;
use crate::config::ClientSource;
use crate::config::{Config, Limiter, Mode};
use crate::decide::{self, Decision, LocalReply};
use crate::global::Facts;
use crate::rules::{Classified, Rules, Target};
use crate::store;
use mesh_core::config_error::{self, ConfigError};
use mesh_core::identity::state;
use mesh_core::jsonrpc::{self, RequestFacts};
use mesh_core::jsonrpc_scan::{Pointers, Scanner};
use mesh_core::mcp::{self, HeaderFacts};
use mesh_core::metrics::labeled;
use mesh_core::rls;
use mesh_core::stage::{
    header_text, Chunk, Counter, Exchange, Flow, GrpcCall, Host, Level, Stage, Step,
};
use mesh_core::token_bucket::Quota;
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The pluginConfig of a standalone org-rate-limit module.
pub fn build(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(config)?;
    Ok(vec![Rc::new(compile(config, host))])
}

pub fn compile(config: Config, host: &dyn Host) -> RateStage {
    let rules = Rules::new(&config);
    let counters = Counters::define(host, &rules);
    store::ensure_registry(host.store());
    RateStage(Rc::new(Shared {
        config,
        rules,
        counters,
    }))
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

const NO_PLAN: &str = "none";

impl Counters {
    fn define(host: &dyn Host, rules: &Rules) -> Self {
        let mut by_plan = BTreeMap::new();
        for plan in rules
            .policies()
            .into_iter()
            .chain(std::iter::once(NO_PLAN.to_string()))
        {
            let counters = Decision::ALL
                .iter()
                .map(|d| {
                    let name = labeled(
                        "mcp_ratelimit_requests_total",
                        &[("decision", d.as_str()), ("plan", &plan)],
                    );
                    Counter::define(host, &name)
                })
                .collect();
            by_plan.insert(plan, counters);
        }
        let service_errors = rls::FAILURE_REASONS
            .iter()
            .map(|reason| {
                let name = labeled("mcp_ratelimit_service_errors_total", &[("reason", reason)]);
                (*reason, Counter::define(host, &name))
            })
            .collect();
        Self {
            by_plan,
            overflow: Counter::define(host, "mcp_ratelimit_bucket_overflow_total"),
            service_errors,
        }
    }

    fn service_error(&self, host: &dyn Host, reason: &str) {
        if let Some((_, c)) = self.service_errors.iter().find(|(r, _)| *r == reason) {
            c.inc(host);
        }
    }

    fn inc(&self, host: &dyn Host, plan: &str, decision: Decision) {
        let counters = self.by_plan.get(plan).or_else(|| self.by_plan.get(NO_PLAN));
        if let Some(c) = counters.and_then(|c| c.get(decision.index())) {
            c.inc(host);
        }
    }
}

struct Shared {
    config: Config,
    rules: Rules,
    counters: Counters,
}

pub struct RateStage(Rc<Shared>);

impl Stage for RateStage {
    fn start(&self) -> Box<dyn Flow> {
        Box::new(RateFlow {
            shared: Rc::clone(&self.0),
            path: String::new(),
            method: String::new(),
            jsonrpc: false,
            target: None,
            scanner: None,
            scanned: 0,
            body_facts: None,
            jsonrpc_id: None,
            primed: None,
            pending_global: None,
            response_headers: Vec::new(),
        })
    }
}

struct RateFlow {
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
    /// Bytes of the body fed to the scanner so far.
    scanned: usize,
    /// What the body said, for the access log of a rejection.
    body_facts: Option<RequestFacts>,
    /// The JSON-RPC id, once the body was read (echoed in error answers).
    jsonrpc_id: Option<Value>,
    /// The pre-check's read of the bucket, for the charge's first read.
    primed: Option<store::Stored>,
    /// Policy name of a request waiting for the rate-limit service, and when
    /// the call was sent.
    pending_global: Option<(String, u64)>,
    response_headers: Vec<(&'static str, String)>,
}

/// Why the rate-limit service gave no answer: the `reason` label of
/// `mcp_ratelimit_service_errors_total`, and the gRPC status and elapsed
/// milliseconds when the call itself failed (for the warning line).
struct ServiceError {
    reason: &'static str,
    grpc: Option<(u32, u64)>,
}

impl RateFlow {
    fn body_cap(&self) -> usize {
        self.shared.config.max_body_bytes
    }

    /// Charges the request's cost where the config says and applies the
    /// decision (or pauses for the rate-limit service).
    fn run(&mut self, x: &mut Exchange, host: &mut dyn Host, cost: u64) -> Step {
        let Some(target) = self.target.clone() else {
            return Step::Continue;
        };
        match self.shared.config.limiter {
            Limiter::Local => self.run_local(x, host, &target, cost, true),
            Limiter::Global => self.call_global(x, host, &target, cost),
            Limiter::LocalThenGlobal => {
                // The cheap local check first; only what it lets through asks
                // the service (whose answer is the one counted).
                match self.run_local(x, host, &target, cost, false) {
                    Step::Continue => self.call_global(x, host, &target, cost),
                    step => step,
                }
            }
        }
    }

    /// The local bucket. `final_say`: record and apply every decision; else
    /// (local_then_global) only a rejection is recorded and applied.
    fn run_local(
        &mut self,
        x: &mut Exchange,
        host: &mut dyn Host,
        target: &Target,
        cost: u64,
        final_say: bool,
    ) -> Step {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        // The pre-check's read of the bucket serves the charge's first read.
        let primed = store::Primed {
            inner: host.store(),
            key: &target.key,
            read: std::cell::RefCell::new(self.primed.take()),
        };
        let local = decide::charge_local(
            &primed,
            target,
            cost,
            host.now_ns(),
            config.max_cas_retries,
            config.max_buckets,
        );
        if local.overflowed {
            shared.counters.overflow.inc(host);
        }
        let decision = decide::decide(
            config.mode,
            config.failure_mode,
            local.result.ok().map(|o| o.allowed),
        );
        if let Err(failure) = local.result {
            host.log(
                Level::Warn,
                &format!("shared data failed ({failure:?}): {}", decision.as_str()),
            );
        }
        if decision == Decision::ShadowLimited {
            log_shadow(host, target, cost);
        }
        if !final_say && !decision.rejects() {
            return Step::Continue;
        }
        let quota = local.result.ok().map(|o| o.quota);
        self.finish(x, host, decision, &target.policy, quota)
    }

    /// Asks the rate-limit service; the request waits for its answer.
    fn call_global(
        &mut self,
        x: &mut Exchange,
        host: &mut dyn Host,
        target: &Target,
        cost: u64,
    ) -> Step {
        let shared = Rc::clone(&self.shared);
        let Some(global) = shared.config.global.as_ref() else {
            return self.finish(x, host, Decision::Allowed, &target.policy, None);
        };
        let descriptors = global.descriptors(&Facts {
            target,
            http_method: &self.method,
            body: self.body_facts.as_ref(),
        });
        if cost == 0 || descriptors.is_empty() {
            return self.finish(x, host, Decision::Allowed, &target.policy, None);
        }
        let message = rls::encode_request(&global.domain, &descriptors, cost);
        let call = host.call_grpc(GrpcCall {
            cluster: &global.cluster,
            service: rls::SERVICE,
            method: rls::METHOD,
            message: &message,
            timeout_ms: global.timeout_ms,
        });
        match call {
            Some(_token) => {
                self.pending_global = Some((target.policy.clone(), host.now_ns()));
                Step::Pause
            }
            // Unknown cluster, no healthy host: failure_mode.
            None => self.global_answer(
                x,
                host,
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
        x: &mut Exchange,
        host: &mut dyn Host,
        policy: &str,
        answer: Result<(bool, Option<Quota>), ServiceError>,
    ) -> Step {
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
                shared.counters.service_error(host, e.reason);
                (None, None)
            }
        };
        let decision = decide::decide(config.mode, failure_mode, allowed);
        if let Err(ServiceError { reason, grpc }) = answer {
            let detail = grpc.map_or(String::new(), |(status, ms)| {
                format!(" (grpc status {status} after {ms} ms)")
            });
            host.log(
                Level::Warn,
                &format!("rate-limit service {reason}{detail}: {}", decision.as_str()),
            );
        }
        if decision == Decision::ShadowLimited {
            if let Some(target) = &self.target {
                log_shadow(host, target, 0);
            }
        }
        self.finish(x, host, decision, policy, quota)
    }

    /// Records the decision (counter, filter state), then answers or lets
    /// the request through.
    fn finish(
        &mut self,
        x: &mut Exchange,
        host: &mut dyn Host,
        decision: Decision,
        policy: &str,
        quota: Option<Quota>,
    ) -> Step {
        self.shared.counters.inc(host, policy, decision);
        host.set_state(state::RATELIMIT_RESULT, decision.as_str());
        if let Some(q) = &quota {
            host.set_state(state::RATELIMIT_REMAINING, &q.remaining.to_string());
        }
        if !decision.rejects() {
            self.response_headers = decide::forwarded_headers(
                self.shared.config.response_headers,
                decision,
                policy,
                quota.as_ref(),
            );
            return Step::Continue;
        }
        if let Some(facts) = self.body_facts.take() {
            x.hand_over(host, facts);
        }
        // JSON-RPC errors echo the id when the body was read, else carry
        // `"id": null` (JSON-RPC 2.0: id not determinable).
        let id = match &self.jsonrpc_id {
            Some(id) => Some(id.clone()),
            None if self.jsonrpc => Some(Value::Null),
            None => None,
        };
        if let Some(reply) = decide::reply(decision, policy, quota.as_ref(), id.as_ref()) {
            send(host, &reply);
        }
        Step::Replied
    }

    /// Before reading the body: if the bucket cannot afford even the
    /// cheapest cost this request could have, answer now, so a client that
    /// is over its limit never reaches the upstream.
    fn precheck_rejects(&mut self, x: &mut Exchange, host: &mut dyn Host) -> Option<Step> {
        let target = self.target.clone()?;
        let shared = Rc::clone(&self.shared);
        if shared.config.limiter == Limiter::Global {
            return None;
        }
        let min = shared.rules.min_cost(&self.path, &self.method);
        let (outcome, read) =
            store::peek(host.store(), &target.key, &target.limit, min, host.now_ns()).ok()?;
        if outcome.allowed || shared.config.mode == Mode::Shadow {
            self.primed = Some(read);
            return None;
        }
        Some(self.finish(
            x,
            host,
            Decision::Limited,
            &target.policy,
            Some(outcome.quota),
        ))
    }

    /// The body (up to the cap, or up to where the facts settled) is here:
    /// cost it and decide.
    fn decide_with_body(&mut self, x: &mut Exchange, host: &mut dyn Host) -> Step {
        let facts = self.scanner.take().and_then(|s| s.facts());
        self.jsonrpc_id = facts.as_ref().and_then(|f| f.id.clone());
        let cost = self
            .shared
            .rules
            .cost(&self.path, &self.method, facts.as_ref());
        self.body_facts = facts;
        self.run(x, host, cost)
    }

    /// The client a request without identity comes from (read only for them).
    fn anonymous_client(&self, host: &mut dyn Host) -> String {
        let anonymous = &self.shared.config.anonymous_client;
        let raw = match anonymous.from {
            ClientSource::None => None,
            ClientSource::SourceAddress => host
                .property(&["source", "address"])
                .and_then(|v| String::from_utf8(v).ok()),
            ClientSource::Header => header_text(host, &anonymous.header).map(str::to_string),
        };
        client::client_key(anonymous, raw.as_deref())
    }
}

fn log_shadow(host: &dyn Host, target: &Target, cost: u64) {
    host.log(
        Level::Info,
        &format!(
            "shadow: would limit org={} plan={} class={} cost={cost}",
            target.org.as_deref().unwrap_or("-"),
            target.policy,
            target.class
        ),
    );
}

/// The call a 2026-07-28 request's headers name, when mcp-guard holds them
/// to the body: an earlier stage of this module left it in the exchange, or
/// an earlier mcp-guard filter marked the request `enforced` in filter state
/// (which no client can write). The property is read only for requests
/// that carry `Mcp-Method`.
fn checked_header_facts(x: &Exchange, host: &mut dyn Host) -> Option<RequestFacts> {
    if let Some(call) = &x.header_call {
        return Some(call.facts());
    }
    host.request_header(mcp::header::METHOD)?;
    let enforced = host.property(&[state::HEADER_CHECK])?;
    if enforced != b"enforced" {
        return None;
    }
    Some(HeaderFacts::read(host.request_headers()).call()?.facts())
}

fn send(host: &mut dyn Host, reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    host.reply(reply.status, &headers, &reply.body);
}

impl Flow for RateFlow {
    fn on_request_headers(&mut self, x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let text = |host: &mut dyn Host, name: &str| header_text(host, name).map(str::to_string);
        self.path = text(host, ":path").unwrap_or_default();
        self.method = text(host, ":method").unwrap_or_default();
        let org = text(host, &config.org_header);
        let plan = match org {
            Some(_) => text(host, &config.plan_header),
            None => None,
        };
        if self.method.eq_ignore_ascii_case("POST") {
            let content_type = header_text(host, "content-type");
            self.jsonrpc = jsonrpc::is_jsonrpc_post(&self.method, content_type);
        }
        let client = if shared.rules.has_identity(org.as_deref()) {
            String::new()
        } else {
            self.anonymous_client(host)
        };
        match shared
            .rules
            .classify(org.as_deref(), plan.as_deref(), &self.path, &client)
        {
            Classified::NoIdentity => self.finish(x, host, Decision::NoIdentity, NO_PLAN, None),
            Classified::Charge(target) => {
                self.target = Some(target);
                let global_needs_body = config.limiter != Limiter::Local
                    && config.global.as_ref().is_some_and(|g| g.needs_body());
                let needs_body = self.jsonrpc
                    && !end
                    && self.body_cap() > 0
                    && (global_needs_body
                        || shared.rules.needs_body(
                            &self.path,
                            &self.method,
                            Some("application/json"),
                        ));
                if !needs_body {
                    let cost = shared.rules.cost(&self.path, &self.method, None);
                    return self.run(x, host, cost);
                }
                if let Some(facts) = checked_header_facts(x, host) {
                    // A 2026-07-28 call, priced on its headers before its
                    // body arrives: mcp-guard refuses the body if it differs.
                    let cost = shared.rules.cost(&self.path, &self.method, Some(&facts));
                    self.body_facts = Some(facts);
                    return self.run(x, host, cost);
                }
                if let Some(step) = self.precheck_rejects(x, host) {
                    return step;
                }
                // Proxy-Wasm in Envoy only delivers the body once the headers
                // went on; the body itself is held until the decision.
                self.scanner = Some(Scanner::new(Pointers::default()));
                Step::Continue
            }
        }
    }

    fn request_body_room(&self) -> usize {
        if self.scanner.is_some() {
            self.body_cap().saturating_sub(self.scanned)
        } else {
            0
        }
    }

    fn on_request_body(&mut self, x: &mut Exchange, host: &mut dyn Host, chunk: Chunk<'_>) -> Step {
        if self.pending_global.is_some() {
            // Decided on the facts, waiting for the rate-limit service: the
            // rest of the body waits too (Continue would release it upstream
            // before the answer).
            return Step::Pause;
        }
        let cap = self.body_cap();
        let Some(scanner) = self.scanner.as_mut() else {
            return Step::Continue;
        };
        scanner.push(chunk.data);
        self.scanned = self.scanned.saturating_add(chunk.data.len());
        let settled = self.scanned >= cap || scanner.is_done();
        if !settled && !chunk.end {
            // Envoy buffers the body until the facts settle or the cap.
            return Step::Pause;
        }
        self.decide_with_body(x, host)
    }

    fn on_request_trailers(&mut self, x: &mut Exchange, host: &mut dyn Host) -> Step {
        if self.pending_global.is_some() {
            return Step::Pause;
        }
        if self.scanner.is_none() {
            return Step::Continue;
        }
        self.decide_with_body(x, host)
    }

    /// The rate-limit service answered (or failed, or timed out).
    fn on_grpc_response(
        &mut self,
        x: &mut Exchange,
        host: &mut dyn Host,
        status: u32,
        message: &[u8],
    ) -> Step {
        let Some((policy, sent_ns)) = self.pending_global.take() else {
            return Step::Continue;
        };
        let answer = if status == 0 {
            match rls::decode_response(message) {
                Ok(r) if r.overall == rls::Code::OverLimit => Ok((false, r.quota())),
                Ok(r) if r.overall == rls::Code::Ok => Ok((true, r.quota())),
                _ => Err(ServiceError {
                    reason: "bad_response",
                    grpc: None,
                }),
            }
        } else {
            let timeout_ns = self
                .shared
                .config
                .global
                .as_ref()
                .map_or(0, |g| g.timeout_ms.saturating_mul(1_000_000));
            let elapsed = host.now_ns().saturating_sub(sent_ns);
            let reason = rls::failure_reason(status, elapsed, timeout_ns);
            Err(ServiceError {
                reason,
                grpc: Some((status, elapsed / 1_000_000)),
            })
        };
        self.global_answer(x, host, &policy, answer)
    }

    fn on_response_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, _end: bool) {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            host.set_response_header(name, Some(&value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::chain::Chain;
    use mesh_core::mock_host::MockHost;

    const T0: u64 = 1_700_000_000_000_000_000;

    /// burst 6, a tool that costs 5, plus `extra` config fields.
    fn chain(extra: serde_json::Value) -> (Chain, MockHost) {
        let mut config = serde_json::json!({
            "default_plan": "free",
            "plans": {"free": {"requests_per_minute": 60, "burst": 6}},
            "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
            "response_headers": "always"
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let mut host = MockHost::with_headers(&[
            (":method", "POST"),
            (":path", "/mcp"),
            ("content-type", "application/json"),
            ("x-mcp-org-id", "acme"),
            ("x-mcp-plan", "free"),
        ]);
        host.now_ns = T0;
        let stages = build(config.to_string().as_bytes(), &host).unwrap_or_default();
        (Chain::new(&stages), host)
    }

    fn call(tool: &str, id: u32) -> Vec<u8> {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        )
        .into_bytes()
    }

    /// Headers, then the body in `split` pieces as Envoy buffers it (each
    /// callback sees everything buffered so far): whether the request went on.
    fn send(chain: &mut Chain, host: &mut MockHost, body: &[u8], split: usize) -> bool {
        if !chain.request_headers(host, false) {
            return false;
        }
        let cut = split.min(body.len());
        let mut read =
            |off: usize, len: usize| body.get(off..off + len).unwrap_or_default().to_vec();
        let replies = host.replies.len();
        if chain.request_body(host, cut, cut == body.len(), &mut read) {
            return true;
        }
        // Held, not answered: the rest of the body comes.
        host.replies.len() == replies
            && cut < body.len()
            && chain.request_body(host, body.len(), true, &mut read)
    }

    #[test]
    fn the_body_is_held_until_its_tool_is_known_then_charged_its_cost() {
        let (mut c, mut host) = chain(serde_json::json!({}));
        let body = call("run_debate_round", 7);
        // The first 20 bytes cannot name the tool: the body is held.
        assert!(
            !c.request_headers(&mut host, false) || {
                let mut read =
                    |off: usize, len: usize| body.get(off..off + len).unwrap_or_default().to_vec();
                !c.request_body(&mut host, 20, false, &mut read)
                    && c.request_body(&mut host, body.len(), true, &mut read)
            }
        );
        assert_eq!(
            host.state.get("mcp_ratelimit_result").map(String::as_str),
            Some("allowed")
        );
        assert_eq!(
            host.state
                .get("mcp_ratelimit_remaining")
                .map(String::as_str),
            Some("1")
        );
        // The next costly call cannot be paid: 429 with the call's own id.
        let (mut c2, _) = chain(serde_json::json!({}));
        assert!(!send(
            &mut c2,
            &mut host,
            &call("run_debate_round", 8),
            1000
        ));
        let reply = host
            .replies
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("no reply"));
        assert_eq!(reply.status, 429);
        assert!(reply.body.contains(r#""id":8"#), "{}", reply.body);
    }

    #[test]
    fn an_over_limit_client_is_answered_before_its_body_is_read() {
        let (mut c, mut host) = chain(serde_json::json!({}));
        for _ in 0..6 {
            let (mut cheap, _) = chain(serde_json::json!({}));
            assert!(send(&mut cheap, &mut host, &call("get_debate", 1), 1000));
        }
        // Bucket empty: even the cheapest cost (1) is refused at the headers.
        assert!(!c.request_headers(&mut host, false));
        assert_eq!(host.replies.last().map(|r| r.status), Some(429));
    }

    #[test]
    fn a_global_call_holds_the_request_until_the_service_answers() {
        let (mut c, mut host) = chain(serde_json::json!({
            "limiter": "global",
            "global": {"cluster": "rls", "domain": "mcp", "timeout_ms": 20}
        }));
        assert!(!send(&mut c, &mut host, &call("get_debate", 3), 1000));
        assert_eq!(host.calls.len(), 1, "one call to the rate-limit service");
        assert!(host.replies.is_empty());
        // More body while the answer is pending stays held.
        assert!(!c.request_trailers(&mut host));
        // OVER_LIMIT: 429 and the request never resumes.
        let over_limit = [0x08, 0x02];
        assert!(!c.grpc_response(&mut host, 0, &over_limit));
        assert_eq!(host.replies.last().map(|r| r.status), Some(429));
    }

    #[test]
    fn a_refused_call_takes_the_failure_mode() {
        let (mut c, mut host) = chain(serde_json::json!({
            "limiter": "global",
            "failure_mode": "closed",
            "global": {"cluster": "nowhere", "domain": "mcp", "timeout_ms": 20}
        }));
        host.refuse_calls = true;
        assert!(!send(&mut c, &mut host, &call("get_debate", 3), 1000));
        assert_eq!(host.replies.last().map(|r| r.status), Some(429));
        let errors: u64 = host
            .metrics
            .borrow()
            .iter()
            .filter(|(name, _)| name.contains("service_errors") && name.contains("unavailable"))
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(errors, 1);
    }
}
