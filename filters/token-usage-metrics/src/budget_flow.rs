//! One LLM call under budgets: holds the request body (up to
//! `max_request_body_bytes`) to size the reservation, reserves or denies
//! before the body goes upstream, and reconciles once the usage is known.
//!
//! With `limiter: global` (or `local_then_global`, after the local
//! counters) the reservation is one call to the rate-limit service: one
//! descriptor per budget, each with its own `hits_addend`. The protocol
//! cannot give back, so what a call reserved but did not use is kept in the
//! counter's ledger and taken off this scope's next charge (see
//! [`budget::open_global`]).

use crate::budget::{self, GlobalHeld, Held, Reserve, Tokens};
use crate::budget_config::{Budget, Budgets, Count, FailureMode};
use crate::budget_reply::{self, Denial, Spent};
use crate::budget_request::sizing;
use crate::budget_window::window_at;
use mesh_core::llm_usage::{Api, Usage};
use mesh_core::metrics::labeled;
use mesh_core::rls;
use mesh_core::stage::{Counter, Host, Level};
use mesh_core::token_bucket::Quota;

/// Filter-state keys for the access log.
pub mod state {
    pub const DECISION: &str = "mcp_llm_budget_decision";
    pub const NAME: &str = "mcp_llm_budget_name";
    pub const RESERVED: &str = "mcp_llm_budget_reserved";
    pub const CHARGED: &str = "mcp_llm_budget_charged";
}

/// Counters of this VM (one set per stage).
#[derive(Debug, Clone, Default)]
pub struct BudgetCounters {
    pub denied: Counter,
    pub charged_without_usage: Counter,
    pub store_failed: Counter,
    /// Rate-limit service calls without an answer, by reason
    /// ([`rls::FAILURE_REASONS`]).
    pub service_errors: Vec<(&'static str, Counter)>,
}

impl BudgetCounters {
    /// The counters of `service`; the service-error ones only for
    /// `global` limiters, which call a service.
    pub fn define(host: &dyn Host, service: &str, global: bool) -> Self {
        let counter =
            |name: &str, labels: &[(&str, &str)]| Counter::define(host, &labeled(name, labels));
        let service_label = [("service", service)];
        Self {
            denied: counter("mcp_llm_budget_denied_total", &service_label),
            charged_without_usage: counter(
                "mcp_llm_budget_charged_without_usage_total",
                &service_label,
            ),
            store_failed: counter("mcp_llm_budget_store_failures_total", &service_label),
            service_errors: if global {
                rls::FAILURE_REASONS
                    .iter()
                    .map(|reason| {
                        let labels = [("reason", *reason), ("service", service)];
                        (
                            *reason,
                            counter("mcp_llm_budget_service_errors_total", &labels),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn service_error(&self, host: &dyn Host, reason: &str) {
        if let Some((_, c)) = self.service_errors.iter().find(|(r, _)| *r == reason) {
            c.inc(host);
        }
    }
}

/// Where a call's budgets stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the body to size the reservation.
    Sizing,
    /// Waiting for the rate-limit service.
    Asking,
    /// No budget applies.
    Unbudgeted,
    Allowed,
    Denied,
}

/// What the stage does next.
pub enum Verdict {
    Allow,
    Deny(Denial),
    /// Send this `RateLimitRequest` and wait for the answer.
    Ask(Vec<u8>),
}

/// The tightest token budget's (limit, remaining, reset seconds), for the
/// response headers.
type Left = (u64, u64, u64);

/// A call's budgets from its request headers to its end.
pub struct BudgetCall {
    org: String,
    plan: Option<String>,
    key_id: Option<String>,
    content_length: Option<u64>,
    body: Vec<u8>,
    seen: u64,
    cap: usize,
    phase: Phase,
    /// Local reservations (budget, counter).
    held: Vec<(Budget, Held)>,
    /// Global charges (budget, charge); those with hits were sent, in order.
    global: Vec<(Budget, GlobalHeld)>,
    asked_at_ns: u64,
    /// Denied by this budget.
    spent: Option<String>,
    tokens_left: Option<Left>,
    model: Option<String>,
    reconciled: bool,
    /// What is left per budget (shown units), for the gauge.
    pub observed: Vec<(String, u64)>,
}

/// Keeps the tightest of two token-budget remainders.
fn tighter(left: &mut Option<Left>, candidate: Left) {
    if left.is_none_or(|(_, r, _)| candidate.1 < r) {
        *left = Some(candidate);
    }
}

impl BudgetCall {
    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn new(
        org: String,
        plan: Option<String>,
        key_id: Option<String>,
        content_length: Option<u64>,
        cap: usize,
    ) -> Self {
        Self {
            org,
            plan,
            key_id,
            content_length,
            body: Vec::new(),
            seen: 0,
            cap,
            phase: Phase::Sizing,
            held: Vec::new(),
            global: Vec::new(),
            asked_at_ns: 0,
            spent: None,
            tokens_left: None,
            model: None,
            reconciled: false,
            observed: Vec::new(),
        }
    }

    /// Still sizing: the body is held.
    pub fn waiting(&self) -> bool {
        self.phase == Phase::Sizing
    }

    /// Waiting for the rate-limit service: the body stays held.
    pub fn asking(&self) -> bool {
        self.phase == Phase::Asking
    }

    /// Request-body bytes still wanted.
    pub fn room(&self) -> usize {
        if self.waiting() {
            self.cap.saturating_sub(self.body.len())
        } else {
            0
        }
    }

    /// Keeps `data`; true when the body is known enough to decide.
    pub fn push(&mut self, data: &[u8], len: usize, end: bool) -> bool {
        let take = data.len().min(self.room());
        self.body
            .extend_from_slice(data.get(..take).unwrap_or_default());
        self.seen = self.seen.saturating_add(len as u64);
        end || self.body.len() >= self.cap
    }

    /// Reserves in every budget that applies, all or nothing: locally,
    /// then (global limiters) by asking the rate-limit service.
    pub fn decide(
        &mut self,
        config: &Budgets,
        api: Api,
        path_model: Option<&str>,
        complete: bool,
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) -> Verdict {
        self.phase = Phase::Unbudgeted;
        let facts = if complete && self.body.len() < self.cap.max(1) {
            sizing(&self.body)
        } else {
            Default::default()
        };
        let body_bytes = self.content_length.unwrap_or(0).max(self.seen);
        self.body = Vec::new();
        self.model = path_model.map(str::to_string).or(facts.model);
        let estimate = Tokens::estimate(config, body_bytes, facts.max_output);
        let price = budget::price_of(config, self.model.as_deref());
        let now_ns = host.now_ns();
        let applied = budget::applicable(
            config,
            &self.org,
            self.plan.as_deref(),
            self.key_id.as_deref(),
            self.model.as_deref(),
        );
        if applied.is_empty() {
            return Verdict::Allow;
        }
        let amounts: Vec<u64> = applied
            .iter()
            .map(|a| budget::amount(a.budget, price, estimate))
            .collect();
        if config.limiter.local() {
            for (a, &amount) in applied.iter().zip(&amounts) {
                let reserved = budget::reserve(
                    host.store(),
                    a.budget,
                    &a.key,
                    amount,
                    now_ns,
                    config.max_counters,
                );
                let remaining = match reserved {
                    Ok((Reserve::Taken { remaining }, held)) => {
                        self.held.push((a.budget.clone(), held));
                        remaining
                    }
                    Ok((Reserve::Denied { remaining }, _)) => {
                        let spent = local_spent(a.budget, remaining, now_ns);
                        return self.deny(api, spent, host, counters);
                    }
                    Err(budget::StoreFailed) => {
                        counters.store_failed.inc(host);
                        if config.failure_mode == FailureMode::Deny {
                            let spent = local_spent(a.budget, 0, now_ns);
                            return self.deny(api, spent, host, counters);
                        }
                        continue;
                    }
                };
                self.observed
                    .push((a.budget.name.clone(), budget::shown(a.budget, remaining)));
                if a.budget.count != Count::Cost {
                    let now = now_ns / 1_000_000_000;
                    let (_, end) = window_at(a.budget.window, now);
                    let limit = budget::limit_units(a.budget);
                    tighter(
                        &mut self.tokens_left,
                        (limit, remaining, end.saturating_sub(now)),
                    );
                }
            }
        }
        let Some(service) = config.global.as_ref().filter(|_| config.limiter.global()) else {
            self.phase = Phase::Allowed;
            return Verdict::Allow;
        };
        let mut descriptors = Vec::new();
        for (a, &amount) in applied.iter().zip(&amounts) {
            let reserved = budget::global_units(a.budget, amount);
            let opened = budget::open_global(
                host.store(),
                a.budget,
                &a.key,
                reserved,
                now_ns,
                config.max_counters,
            );
            let g = opened.unwrap_or_else(|budget::StoreFailed| {
                // The ledger could not be read: charge the plain reservation.
                counters.store_failed.inc(host);
                GlobalHeld {
                    key: None,
                    window: 0,
                    reserved,
                    hits: reserved,
                }
            });
            if g.hits > 0 {
                let scope = if a.per_key { "key_id" } else { "org_id" };
                let d = vec![
                    ("budget".to_string(), a.budget.name.clone()),
                    (scope.to_string(), a.scope.clone()),
                ];
                descriptors.push((d, g.hits));
            }
            self.global.push((a.budget.clone(), g));
        }
        if descriptors.is_empty() {
            // Every budget is covered by what the service was charged ahead.
            self.phase = Phase::Allowed;
            return Verdict::Allow;
        }
        self.phase = Phase::Asking;
        self.asked_at_ns = now_ns;
        Verdict::Ask(rls::encode_weighted_request(&service.domain, &descriptors))
    }

    /// The rate-limit service's answer (`grpc_status` 0) or failure (any
    /// other status; `None`: the host refused the call).
    pub fn answer(
        &mut self,
        config: &Budgets,
        api: Api,
        grpc_status: Option<u32>,
        message: &[u8],
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) -> Verdict {
        if !self.asking() {
            return Verdict::Allow;
        }
        let now_ns = host.now_ns();
        let timeout_ns = config
            .global
            .as_ref()
            .map_or(0, |g| g.timeout_ms.saturating_mul(1_000_000));
        let elapsed = now_ns.saturating_sub(self.asked_at_ns);
        let decoded = match grpc_status {
            Some(0) => rls::decode_response(message).map_err(|_| "bad_response"),
            Some(status) => Err(rls::failure_reason(status, elapsed, timeout_ns)),
            None => Err("unavailable"),
        };
        let response = match decoded {
            Ok(r) if r.overall != rls::Code::Unknown => r,
            Ok(_) => return self.service_failed(config, api, "bad_response", host, counters),
            Err(reason) => return self.service_failed(config, api, reason, host, counters),
        };
        // Statuses come in the order of the descriptors sent.
        let sent: Vec<usize> = (0..self.global.len())
            .filter(|&i| self.global.get(i).is_some_and(|(_, g)| g.hits > 0))
            .collect();
        let mut over: Option<(String, Quota)> = None;
        for (&i, status) in sent.iter().zip(&response.statuses) {
            let (Some((b, _)), Some(quota)) = (self.global.get(i), status.quota()) else {
                continue;
            };
            self.observed.push((b.name.clone(), quota.remaining));
            if status.code == Some(rls::Code::OverLimit) && over.is_none() {
                over = Some((b.name.clone(), quota));
            } else if b.count != Count::Cost {
                tighter(
                    &mut self.tokens_left,
                    (quota.limit, quota.remaining, quota.reset_secs),
                );
            }
        }
        if response.overall == rls::Code::Ok {
            self.phase = Phase::Allowed;
            return Verdict::Allow;
        }
        let (name, quota) = match over {
            Some(over) => over,
            // OVER_LIMIT without a status that names its limit.
            None => match self.global.first() {
                Some((b, _)) => (b.name.clone(), Quota::default()),
                None => (String::new(), Quota::default()),
            },
        };
        let spent = Spent {
            name: &name,
            limit: quota.limit,
            remaining: quota.remaining,
            window_secs: quota.window_secs.max(1),
            reset_secs: quota.retry_after_secs.max(1),
        };
        self.deny(api, spent, host, counters)
    }

    /// No answer from the service: `failure_mode`.
    fn service_failed(
        &mut self,
        config: &Budgets,
        api: Api,
        reason: &'static str,
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) -> Verdict {
        counters.service_error(host, reason);
        let deny = config.failure_mode == FailureMode::Deny;
        host.log(
            Level::Warn,
            &format!(
                "budget rate-limit service {reason}: {}",
                if deny { "denied" } else { "allowed" }
            ),
        );
        if deny {
            let now = host.now_ns() / 1_000_000_000;
            let (name, window_secs) = match self.global.first() {
                Some((b, _)) => (b.name.clone(), window_len(b.window, now)),
                None => (String::new(), 1),
            };
            let spent = Spent {
                name: &name,
                limit: 0,
                remaining: 0,
                window_secs,
                reset_secs: 1,
            };
            return self.deny(api, spent, host, counters);
        }
        // Allowed without the service: what it did not count is owed.
        let now_ns = host.now_ns();
        for (b, g) in &mut self.global {
            if budget::settle_global(host.store(), b, g, to_i64(g.hits), now_ns).is_err() {
                counters.store_failed.inc(host);
            }
            g.hits = 0;
        }
        self.phase = Phase::Allowed;
        Verdict::Allow
    }

    /// Denies the call: gives back what it took (all or nothing) and builds
    /// the answer. Hits the service counted stay counted (it cannot give
    /// back), so they stay settled in the ledger.
    fn deny(
        &mut self,
        api: Api,
        spent: Spent<'_>,
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) -> Verdict {
        let now_ns = host.now_ns();
        for (b, held) in self.held.drain(..) {
            let _ = budget::reconcile(host.store(), &b, &held, 0, now_ns);
        }
        for (b, g) in self.global.drain(..) {
            let delta = to_i64(g.hits) - to_i64(g.reserved);
            let _ = budget::settle_global(host.store(), &b, &g, delta, now_ns);
        }
        self.phase = Phase::Denied;
        self.spent = Some(spent.name.to_string());
        counters.denied.inc(host);
        Verdict::Deny(budget_reply::denial(api, &spent))
    }

    /// The OpenAI-style remaining-token headers of an allowed call.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self.tokens_left {
            Some((limit, remaining, reset)) if self.phase == Phase::Allowed => {
                budget_reply::remaining_headers(limit, remaining, reset).to_vec()
            }
            _ => Vec::new(),
        }
    }

    /// Replaces the reservations with the actual cost (`usage`), refunds
    /// them (`refund`: the provider refused the call), or keeps them (no
    /// usage: cut stream, reset, compressed body), once. Writes the
    /// access-log facts.
    pub fn finish(
        &mut self,
        config: &Budgets,
        usage: Option<Usage>,
        refund: bool,
        response_model: Option<&str>,
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) {
        if self.reconciled || self.waiting() {
            return;
        }
        self.reconciled = true;
        // Cut while the service was asked: never sent upstream.
        let never_sent = self.asking();
        let refund = refund || never_sent;
        let now_ns = host.now_ns();
        let model = response_model.or(self.model.as_deref());
        let price = budget::price_of(config, model);
        let mut shown = None;
        let mut without_usage = false;
        // What the call used per budget, in counter units; `None`: no usage.
        let used = |b: &Budget| -> Option<u64> {
            if refund {
                Some(0)
            } else {
                usage.map(|u| budget::amount(b, price, Tokens::from_usage(&u)))
            }
        };
        for (b, held) in &self.held {
            let actual = used(b).unwrap_or_else(|| {
                without_usage = true;
                held.reserved
            });
            shown.get_or_insert((budget::shown(b, held.reserved), budget::shown(b, actual)));
            match budget::reconcile(host.store(), b, held, actual, now_ns) {
                Ok(Some(left_used)) => {
                    let left = budget::limit_units(b).saturating_sub(left_used);
                    self.observed.push((b.name.clone(), budget::shown(b, left)));
                }
                Ok(None) => {}
                Err(_) => counters.store_failed.inc(host),
            }
        }
        for (b, g) in &self.global {
            let actual = if never_sent {
                // The service counted the hits; the call never ran.
                g.hits
            } else {
                used(b).map_or_else(
                    || {
                        without_usage = true;
                        g.reserved
                    },
                    |units| budget::global_units(b, units),
                )
            };
            shown.get_or_insert((g.reserved, actual));
            let delta = to_i64(actual) - to_i64(g.reserved);
            if budget::settle_global(host.store(), b, g, delta, now_ns).is_err() {
                counters.store_failed.inc(host);
            }
        }
        if without_usage {
            counters.charged_without_usage.inc(host);
        }
        let decision = match self.phase {
            _ if without_usage => "charged_reservation",
            Phase::Allowed => "allowed",
            Phase::Denied => "denied",
            _ => "",
        };
        if !decision.is_empty() {
            host.set_state(state::DECISION, decision);
        }
        let name = self
            .spent
            .as_deref()
            .or_else(|| self.held.first().map(|(b, _)| b.name.as_str()))
            .or_else(|| self.global.first().map(|(b, _)| b.name.as_str()));
        if let Some(name) = name {
            host.set_state(state::NAME, name);
        }
        if let Some((reserved, charged)) = shown {
            host.set_state(state::RESERVED, &reserved.to_string());
            host.set_state(state::CHARGED, &charged.to_string());
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Seconds of the window that holds `now`'s successor (a month's length
/// varies).
fn window_len(window: crate::budget_config::Window, now: u64) -> u64 {
    let (_, end) = window_at(window, now);
    let (_, next_end) = window_at(window, end);
    next_end.saturating_sub(end)
}

/// A local budget's denial, with `remaining` counter units left.
fn local_spent(b: &Budget, remaining: u64, now_ns: u64) -> Spent<'_> {
    let now = now_ns / 1_000_000_000;
    let (_, end) = window_at(b.window, now);
    Spent {
        name: &b.name,
        limit: budget::shown(b, budget::limit_units(b)),
        remaining: budget::shown(b, remaining),
        window_secs: window_len(b.window, now),
        reset_secs: end.saturating_sub(now),
    }
}
