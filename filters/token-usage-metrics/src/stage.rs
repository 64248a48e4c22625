//! The token-usage-metrics stage: recognize LLM calls, watch their bodies go
//! by, count.
//!
//! Bodies are never held: chunks go on to the client as they arrive; the
//! stage only reads them into the bounded readers of mesh-core. A call is
//! reported once, at the end of the response (metrics and filter state for
//! the access log), or in the log phase when the stream was cut.

use crate::budget_config::Budgets;
use crate::budget_flow::{BudgetCall, BudgetCounters, Verdict};
use crate::config::Config;
use crate::report::{self, Call, Labels, Update};
use crate::request_model::ModelScanner;
use crate::route;
use mesh_core::config_error::{self, ConfigError};
use mesh_core::llm_usage::{Api, Outcome, ReadLimits, UsageReader};
use mesh_core::stage::{
    header_text, Chunk, Exchange, Flow, GrpcCall, Host, MetricId, MetricKind, Stage, Step,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The pluginConfig of a standalone token-usage-metrics module.
pub fn build(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(config)?;
    Ok(vec![Rc::new(compile(config, host))])
}

pub fn compile(config: Config, host: &dyn Host) -> UsageStage {
    // Istio puts the workload's name in the node metadata.
    let service = config.service.clone().unwrap_or_else(|| {
        host.property(&["node", "metadata", "WORKLOAD_NAME"])
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    });
    let service = mesh_core::metrics::sanitize_label_value(&service);
    // Counters whose labels are all known now exist at 0 from the start.
    let ids = report::zero_series(&route::known_providers(&config), &service)
        .into_iter()
        .map(|name| {
            let id = host.define_metric(MetricKind::Counter, &name);
            (name, id)
        })
        .collect();
    let metrics = Metrics {
        labels: Labels::new(&service, config.max_orgs, config.max_models),
        ids,
    };
    // Budget counters and their registry exist only where budgets are
    // configured: no extra series or start-up work otherwise.
    let counters = match &config.budgets {
        Some(budgets) => {
            mesh_core::shared_keys::ensure_registry(host.store(), crate::budget::REGISTRY_KEY);
            BudgetCounters::define(host, &service, budgets.limiter.global())
        }
        None => BudgetCounters::default(),
    };
    UsageStage(Rc::new(Shared {
        config,
        metrics: RefCell::new(metrics),
        counters,
    }))
}

/// Label caps and metric ids of this VM (one per Envoy worker), shared by
/// its requests.
struct Metrics {
    labels: Labels,
    ids: HashMap<String, MetricId>,
}

impl Metrics {
    fn apply(&mut self, host: &dyn Host, updates: Vec<Update>) {
        for update in updates {
            let (name, kind, n) = match update {
                Update::Counter(name, n) => (name, MetricKind::Counter, n),
                Update::Histogram(name, v) => (name, MetricKind::Histogram, v),
                Update::Gauge(name, v) => (name, MetricKind::Gauge, v),
            };
            let id = *self
                .ids
                .entry(name)
                .or_insert_with_key(|name| host.define_metric(kind, name));
            match kind {
                MetricKind::Counter => host.add_metric(id, n),
                MetricKind::Histogram | MetricKind::Gauge => host.record_metric(id, n),
            }
        }
    }
}

struct Shared {
    config: Config,
    metrics: RefCell<Metrics>,
    counters: BudgetCounters,
}

impl Shared {
    /// Sets the remaining-budget gauges a call observed.
    fn gauge(&self, host: &dyn Host, call: &mut BudgetCall) {
        let observed = std::mem::take(&mut call.observed);
        if observed.is_empty() {
            return;
        }
        if let Ok(mut metrics) = self.metrics.try_borrow_mut() {
            let updates = observed
                .iter()
                .map(|(budget, left)| metrics.labels.budget_remaining(budget, call.org(), *left))
                .collect();
            metrics.apply(host, updates);
        }
    }
}

/// A call's budget with what deciding it needs.
struct BudgetView<'a> {
    budget: &'a mut BudgetCall,
    api: Api,
    path_model: Option<&'a str>,
    config: &'a Budgets,
}

/// The budget of the call, when it is an LLM call under budgets.
fn budget_view<'a>(call: &'a mut Option<LlmCall>, shared: &'a Shared) -> Option<BudgetView<'a>> {
    let call = call.as_mut()?;
    Some(BudgetView {
        budget: call.budget.as_mut()?,
        api: call.api,
        path_model: call.path_model.as_deref(),
        config: shared.config.budgets.as_ref()?,
    })
}

pub struct UsageStage(Rc<Shared>);

impl Stage for UsageStage {
    fn start(&self) -> Box<dyn Flow> {
        Box::new(UsageFlow {
            shared: Rc::clone(&self.0),
            call: None,
        })
    }
}

struct UsageFlow {
    shared: Rc<Shared>,
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
    /// The call's budgets, when any are configured and it has an org.
    budget: Option<BudgetCall>,
}

impl UsageFlow {
    /// Records the finished call once: metrics, then filter state.
    fn report(&mut self, host: &mut dyn Host, complete: bool) {
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
            operation: call.api.operation(),
            request_model,
            response_model: state.and_then(|s| s.response_model()),
            usage: state.and_then(|s| s.usage()),
            outcome: Some(outcome),
            skipped_events: call.reader.as_ref().map_or(0, UsageReader::skipped_events),
            status,
        };
        if let Ok(mut metrics) = self.shared.metrics.try_borrow_mut() {
            let updates = metrics.labels.updates(&facts);
            metrics.apply(host, updates);
        }
        for (key, value) in report::filter_state(&facts) {
            host.set_state(key, &value);
        }
        if let (Some(b), Some(config)) = (call.budget.as_mut(), self.shared.config.budgets.as_ref())
        {
            // The provider does not bill a call it refused.
            let refund = matches!(outcome, Outcome::Error) && status >= 400;
            // Usage counts when the call succeeded, or when a complete body
            // carried it beside an error event; a cut stream's is partial.
            let counted = !refund && (matches!(outcome, Outcome::Ok) || complete);
            let usage = facts.usage.filter(|_| counted);
            b.finish(
                config,
                usage,
                refund,
                facts.response_model,
                host,
                &self.shared.counters,
            );
            self.shared.gauge(host, b);
        }
    }

    /// Decides the call's budgets once the body is known enough.
    fn decide_budget(&mut self, host: &mut dyn Host, complete: bool) -> Step {
        let shared = Rc::clone(&self.shared);
        let Some(BudgetView {
            budget: b,
            api,
            path_model,
            config,
        }) = budget_view(&mut self.call, &shared)
        else {
            return Step::Continue;
        };
        let verdict = b.decide(config, api, path_model, complete, host, &shared.counters);
        let verdict = match (verdict, config.global.as_ref()) {
            (Verdict::Ask(message), Some(service)) => {
                let sent = host.call_grpc(GrpcCall {
                    cluster: &service.cluster,
                    service: mesh_core::rls::SERVICE,
                    method: mesh_core::rls::METHOD,
                    message: &message,
                    timeout_ms: service.timeout_ms,
                });
                if sent.is_some() {
                    return Step::Pause;
                }
                // Unknown cluster, no healthy host: failure_mode.
                b.answer(config, api, None, &[], host, &shared.counters)
            }
            (verdict, _) => verdict,
        };
        self.apply_verdict(host, verdict)
    }

    /// Lets the call go on, or answers it with the denial.
    fn apply_verdict(&mut self, host: &mut dyn Host, verdict: Verdict) -> Step {
        let shared = Rc::clone(&self.shared);
        let Some(BudgetView {
            budget: b, config, ..
        }) = budget_view(&mut self.call, &shared)
        else {
            return Step::Continue;
        };
        shared.gauge(host, b);
        let Verdict::Deny(d) = verdict else {
            return Step::Continue;
        };
        b.finish(config, None, true, None, host, &shared.counters);
        let headers: Vec<(&str, &str)> = d.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        host.reply(d.status, &headers, &d.body);
        // Never reached the provider: not an LLM call for the usage metrics.
        self.call = None;
        Step::Replied
    }

    /// The call's budget, when it has one.
    fn budget(&self) -> Option<&BudgetCall> {
        self.call.as_ref().and_then(|c| c.budget.as_ref())
    }

    /// True while the rate-limit service decides: the body stays held.
    fn budget_asking(&self) -> bool {
        self.budget().is_some_and(BudgetCall::asking)
    }
}

impl UsageFlow {
    /// Request-body bytes the model scanner still wants.
    fn scanner_room(&self) -> usize {
        match &self.call {
            Some(LlmCall {
                scanner: Some(scanner),
                request_budget,
                ..
            }) if !scanner.done() => *request_budget,
            _ => 0,
        }
    }
}

impl Flow for UsageFlow {
    fn on_request_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step {
        let config = &self.shared.config;
        let Some(path) = header_text(host, ":path") else {
            return Step::Continue;
        };
        let Some(matched) = route::match_path(config, path) else {
            return Step::Continue;
        };
        // Generations are POSTs; `GET /v1/chat/completions` lists stored ones.
        if header_text(host, ":method") != Some("POST") {
            return Step::Continue;
        }
        let provider = route::provider(config, &matched, header_text(host, ":authority"));
        let org = header_text(host, &config.org_header).map(str::to_string);
        if config.force_identity_encoding {
            // Compressed responses cannot be read; providers honour identity.
            host.set_request_header("accept-encoding", Some("identity"));
        }
        let scan = matched.path_model.is_none() && !end && config.max_request_body_bytes > 0;
        let budget = match (&config.budgets, org.as_deref()) {
            (Some(b), Some(org)) => {
                let plan = header_text(host, &b.plan_header).map(str::to_string);
                let key = header_text(host, &b.key_header).map(str::to_string);
                // A call no budget can apply to is not held.
                crate::budget::may_apply(b, org, plan.as_deref(), key.as_deref()).then(|| {
                    BudgetCall::new(
                        org.to_string(),
                        plan,
                        key,
                        header_text(host, "content-length").and_then(|v| v.parse().ok()),
                        config.max_request_body_bytes,
                    )
                })
            }
            _ => None,
        };
        self.call = Some(LlmCall {
            api: matched.api,
            provider,
            org,
            path_model: matched.path_model,
            scanner: scan.then(ModelScanner::new),
            request_budget: config.max_request_body_bytes,
            status: 0,
            reader: None,
            reported: false,
            budget,
        });
        if end {
            return self.decide_budget(host, true);
        }
        Step::Continue
    }

    fn request_body_room(&self) -> usize {
        let budget = self.budget().map_or(0, BudgetCall::room);
        budget.max(self.scanner_room())
    }

    fn on_request_trailers(&mut self, _x: &mut Exchange, host: &mut dyn Host) -> Step {
        if self.budget_asking() {
            return Step::Pause;
        }
        if self.budget().is_some_and(BudgetCall::waiting) {
            return self.decide_budget(host, true);
        }
        Step::Continue
    }

    fn on_request_body(
        &mut self,
        _x: &mut Exchange,
        host: &mut dyn Host,
        chunk: Chunk<'_>,
    ) -> Step {
        if self.budget_asking() {
            // Decided on the body so far, waiting for the rate-limit
            // service: the rest waits too.
            return Step::Pause;
        }
        let scanner_room = self.scanner_room();
        if let Some(call) = self.call.as_mut() {
            let data = chunk
                .data
                .get(..scanner_room.min(chunk.data.len()))
                .unwrap_or_default();
            if let Some(scanner) = call.scanner.as_mut() {
                if !data.is_empty() {
                    call.request_budget = call.request_budget.saturating_sub(data.len());
                    scanner.push(data);
                }
            }
            if let Some(b) = call.budget.as_mut().filter(|b| b.waiting()) {
                if !b.push(chunk.data, chunk.len, chunk.end) {
                    // Envoy buffers the body until the budget is decided.
                    return Step::Pause;
                }
                return self.decide_budget(host, chunk.end);
            }
        }
        Step::Continue
    }

    fn on_grpc_response(
        &mut self,
        _x: &mut Exchange,
        host: &mut dyn Host,
        status: u32,
        message: &[u8],
    ) -> Step {
        let shared = Rc::clone(&self.shared);
        let Some(BudgetView {
            budget: b,
            api,
            config,
            ..
        }) = budget_view(&mut self.call, &shared)
        else {
            return Step::Continue;
        };
        let verdict = b.answer(config, api, Some(status), message, host, &shared.counters);
        self.apply_verdict(host, verdict)
    }

    fn on_response_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, end: bool) {
        if self.call.is_none() {
            return;
        }
        let text = |host: &mut dyn Host, name: &str| {
            host.response_header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        };
        let status = text(host, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = text(host, "content-type");
        let content_encoding = text(host, "content-encoding");
        let limits = ReadLimits {
            max_json_bytes: self.shared.config.max_response_body_bytes,
            max_event_bytes: self.shared.config.max_sse_event_bytes,
        };
        if let Some(call) = self.call.as_mut() {
            if let Some(b) = call.budget.as_ref() {
                if self
                    .shared
                    .config
                    .budgets
                    .as_ref()
                    .is_some_and(|c| c.response_headers)
                {
                    for (name, value) in b.response_headers() {
                        host.set_response_header(name, Some(&value));
                    }
                }
            }
            call.status = status;
            call.reader = Some(UsageReader::new(
                call.api,
                content_type.as_deref(),
                content_encoding.as_deref(),
                limits,
            ));
        }
        if end {
            self.report(host, true);
        }
    }

    fn response_body_room(&self, len: usize) -> usize {
        self.call
            .as_ref()
            .and_then(|c| c.reader.as_ref())
            .map_or(0, |reader| reader.wanted(len))
    }

    fn on_response_body(&mut self, _x: &mut Exchange, host: &mut dyn Host, chunk: Chunk<'_>) {
        let wanted = self.response_body_room(chunk.len);
        let Some(reader) = self.call.as_mut().and_then(|c| c.reader.as_mut()) else {
            return;
        };
        if wanted > 0 {
            reader.push(chunk.data);
        } else {
            reader.skip(chunk.len);
        }
        if chunk.end {
            self.report(host, true);
        }
    }

    fn on_response_trailers(&mut self, _x: &mut Exchange, host: &mut dyn Host) {
        self.report(host, true);
    }

    fn on_log(&mut self, _x: &mut Exchange, host: &mut dyn Host) {
        // Still open here: the stream was cut (reset, timeout, client gone).
        self.report(host, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::mock_host::MockHost;

    #[test]
    fn counters_with_known_labels_exist_before_the_first_call_and_count_on_it() {
        // One host for the VM and its request: metric ids belong to the VM.
        let mut host = MockHost::with_headers(&[(":method", "POST"), (":path", "/v1/messages")]);
        let stage = compile(
            config_error::load::<Config>(br#"{"service": "mcp-llm"}"#).unwrap_or_default(),
            &host,
        );
        let not_reported = "gen_ai_provider_name=.=anthropic;.;reason=.=not_reported;.;service=.=mcp-llm;.;mcp_llm_usage_missing_total";
        assert!(host.metric_names.borrow().iter().any(|n| n == not_reported));
        assert_eq!(host.metric(not_reported), 0);
        // A complete Anthropic answer without usage counts on that same series.
        let mut flow = stage.start();
        let mut x = Exchange::default();
        assert_eq!(
            flow.on_request_headers(&mut x, &mut host, true),
            Step::Continue
        );
        host.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        flow.on_response_headers(&mut x, &mut host, false);
        let body = br#"{"type":"message","model":"claude","content":[]}"#;
        let room = flow.response_body_room(body.len());
        let data = body.get(..room).unwrap_or_default();
        flow.on_response_body(
            &mut x,
            &mut host,
            Chunk {
                data,
                len: body.len(),
                end: true,
            },
        );
        flow.on_log(&mut x, &mut host);
        assert_eq!(host.metric(not_reported), 1, "{:?}", host.metrics.borrow());
    }

    mod global_budgets {
        use super::*;
        use mesh_core::chain::Chain;

        const T0: u64 = 1_700_000_000_000_000_000;
        /// 36 bytes: 9 input tokens + 10 output tokens reserved.
        const BODY: &[u8] = br#"{"model":"gpt-4o","max_tokens":10}  "#;

        fn host() -> MockHost {
            let mut host = MockHost::with_headers(&[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                ("x-mcp-org-id", "acme"),
                ("x-mcp-plan", "free"),
            ]);
            host.now_ns = T0;
            host
        }

        fn stages(failure_mode: &str, host: &MockHost) -> Vec<Rc<dyn Stage>> {
            let config = format!(
                r#"{{"budgets": {{"limiter": "global", "failure_mode": "{failure_mode}",
                    "global": {{"cluster": "rls"}},
                    "plans": {{"*": [{{"name": "daily", "window": "day"}}]}}}}}}"#
            );
            build(config.as_bytes(), host).unwrap_or_default()
        }

        /// Headers and the whole body: whether the request went on.
        fn send(chain: &mut Chain, host: &mut MockHost) -> bool {
            let mut read =
                |off: usize, len: usize| BODY.get(off..off + len).unwrap_or_default().to_vec();
            chain.request_headers(host, false)
                && chain.request_body(host, BODY.len(), true, &mut read)
        }

        /// The hits of the one descriptor of the last call made.
        fn hits(host: &MockHost) -> Option<u64> {
            let (_, message) = host.calls.last()?;
            // ...0x1a 0x02 0x08 <hits> ends the descriptor (hits < 128).
            let n = message.len();
            (message.get(n - 4..n - 1)? == [0x1a, 0x02, 0x08]).then(|| u64::from(message[n - 1]))
        }

        /// A RateLimitResponse: overall `code`, one status with a daily limit
        /// of 100 and `remaining`.
        fn response(code: u8, remaining: u8) -> Vec<u8> {
            vec![
                0x08,
                code,
                0x12,
                10,
                0x08,
                code,
                0x12,
                2 + 2,
                0x08,
                100,
                0x10,
                4,
                0x18,
                remaining,
            ]
        }

        fn finish_with_usage(chain: &mut Chain, host: &mut MockHost, input: u64, output: u64) {
            host.response_headers = vec![
                (":status".into(), b"200".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
            ];
            chain.response_headers(host, false);
            let body = format!(
                r#"{{"model":"gpt-4o","usage":{{"prompt_tokens":{input},"completion_tokens":{output}}}}}"#
            );
            chain.response_body(host, body.len(), true, &mut |len| {
                body.as_bytes().get(..len).unwrap_or_default().to_vec()
            });
            chain.log(host);
        }

        #[test]
        fn one_call_to_the_service_carries_the_reservation_and_the_next_gets_the_refund() {
            let mut host = host();
            let stages = stages("allow", &host);
            let mut first = Chain::new(&stages);
            assert!(!send(&mut first, &mut host), "held for the service");
            assert_eq!(host.calls.len(), 1);
            assert_eq!(hits(&host), Some(19));
            assert!(host
                .calls
                .last()
                .is_some_and(|(cluster, m)| cluster == "rls"
                    && m.windows(5).any(|w| w == b"daily")
                    && m.windows(4).any(|w| w == b"acme")));
            assert!(first.grpc_response(&mut host, 0, &response(1, 81)));
            // Used 4 of 19: 15 charged ahead, taken off the next charge.
            finish_with_usage(&mut first, &mut host, 3, 1);
            let remaining = host
                .response_headers
                .iter()
                .find(|(k, _)| k == "x-ratelimit-remaining-tokens")
                .map(|(_, v)| v.clone());
            assert_eq!(remaining, Some(b"81".to_vec()), "the service's remaining");
            assert_eq!(
                host.state.get("mcp_llm_budget_charged").map(String::as_str),
                Some("4")
            );
            let mut second = Chain::new(&stages);
            assert!(!send(&mut second, &mut host));
            assert_eq!(hits(&host), Some(4));
        }

        #[test]
        fn over_limit_is_a_provider_style_429_and_counts_as_used() {
            let mut host = host();
            let stages = stages("allow", &host);
            let mut c = Chain::new(&stages);
            assert!(!send(&mut c, &mut host));
            assert!(!c.grpc_response(&mut host, 0, &response(2, 0)));
            let reply = host
                .replies
                .last()
                .cloned()
                .unwrap_or_else(|| panic!("no reply"));
            assert_eq!(reply.status, 429);
            assert!(reply.body.contains("rate_limit_exceeded"), "{}", reply.body);
            assert!(reply
                .headers
                .iter()
                .any(|(k, v)| k == "ratelimit-policy" && v.contains("\"daily\";q=100")));
            // The service counted the 19 hits: nothing is charged ahead.
            let mut next = Chain::new(&stages);
            assert!(!send(&mut next, &mut host));
            assert_eq!(hits(&host), Some(19));
        }

        #[test]
        fn local_then_global_gives_the_local_reservation_back_when_the_service_denies() {
            let mut host = host();
            let config = r#"{"budgets": {"limiter": "local_then_global",
                "global": {"cluster": "rls"},
                "plans": {"*": [{"name": "daily", "window": "day", "limit": 30}]}}}"#;
            let stages = build(config.as_bytes(), &host).unwrap_or_default();
            let local = |host: &MockHost| {
                let b: crate::budget_config::Budget =
                    serde_json::from_str(r#"{"name":"daily","window":"day","limit":30}"#).unwrap();
                crate::budget::remaining(&host.store, &b, "tub1|daily|o|acme", T0)
            };
            let mut c = Chain::new(&stages);
            assert!(!send(&mut c, &mut host));
            assert_eq!(local(&host), 30 - 19, "reserved locally first");
            assert!(!c.grpc_response(&mut host, 0, &response(2, 0)));
            assert_eq!(local(&host), 30, "all or nothing");
            // A second reservation does not fit the local 30: no call is made.
            let mut a = Chain::new(&stages);
            assert!(!send(&mut a, &mut host));
            assert!(a.grpc_response(&mut host, 0, &response(1, 50)));
            let mut b = Chain::new(&stages);
            let calls = host.calls.len();
            assert!(!send(&mut b, &mut host));
            assert_eq!(host.calls.len(), calls);
            assert_eq!(host.replies.last().map(|r| r.status), Some(429));
        }

        #[test]
        fn without_an_answer_the_failure_mode_decides_and_allowed_calls_are_owed() {
            let mut host = host();
            host.refuse_calls = true;
            let deny = stages("deny", &host);
            let mut c = Chain::new(&deny);
            assert!(!send(&mut c, &mut host));
            assert_eq!(host.replies.last().map(|r| r.status), Some(429));
            let errors: u64 = host
                .metrics
                .borrow()
                .iter()
                .filter(|(name, _)| {
                    name.contains("budget_service_errors") && name.contains("=unavailable;")
                })
                .map(|(_, v)| *v)
                .sum();
            assert_eq!(errors, 1);

            let mut host = self::host();
            let allow = stages("allow", &host);
            let mut c = Chain::new(&allow);
            assert!(!send(&mut c, &mut host));
            // A timeout (DEADLINE_EXCEEDED): the call goes on, unseen by the service.
            assert!(c.grpc_response(&mut host, 4, &[]));
            finish_with_usage(&mut c, &mut host, 5, 5);
            // Its 10 tokens are owed: the next call sends them with its own 19.
            let mut next = Chain::new(&allow);
            assert!(!send(&mut next, &mut host));
            assert_eq!(hits(&host), Some(29));
        }
    }
}
