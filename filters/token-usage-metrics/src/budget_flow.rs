//! One LLM call under budgets: holds the request body (up to
//! `max_request_body_bytes`) to size the reservation, reserves or denies
//! before the body goes upstream, and reconciles once the usage is known.

use crate::budget::{self, Held, Reserve, Tokens};
use crate::budget_config::{Budget, Budgets, Count};
use crate::budget_reply::{self, Spent};
use crate::budget_request::sizing;
use crate::budget_window::window_at;
use mesh_core::llm_usage::{Api, Usage};
use mesh_core::stage::{Counter, Host};

/// Filter-state keys for the access log.
pub mod state {
    pub const DECISION: &str = "mcp_llm_budget_decision";
    pub const NAME: &str = "mcp_llm_budget_name";
    pub const RESERVED: &str = "mcp_llm_budget_reserved";
    pub const CHARGED: &str = "mcp_llm_budget_charged";
}

/// Counters of this VM (one set per stage).
#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetCounters {
    pub denied: Counter,
    pub charged_without_usage: Counter,
    pub store_failed: Counter,
}

/// A call's budgets from its request headers to its end.
pub struct BudgetCall {
    org: String,
    plan: Option<String>,
    key_id: Option<String>,
    content_length: Option<u64>,
    body: Vec<u8>,
    seen: u64,
    cap: usize,
    /// Reservations made (budget, counter), once decided.
    held: Vec<(Budget, Held)>,
    decided: bool,
    decision: &'static str,
    /// Denied by this budget.
    spent: Option<String>,
    /// The tightest token budget's remaining, for the response headers.
    tokens_left: Option<(u64, u64, u64)>,
    model: Option<String>,
    reconciled: bool,
    /// What is left per budget (shown units), for the gauge.
    pub observed: Vec<(String, u64)>,
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
            held: Vec::new(),
            decided: false,
            decision: "",
            spent: None,
            tokens_left: None,
            model: None,
            reconciled: false,
            observed: Vec::new(),
        }
    }

    pub fn waiting(&self) -> bool {
        !self.decided
    }

    /// Request-body bytes still wanted.
    pub fn room(&self) -> usize {
        if self.decided {
            0
        } else {
            self.cap.saturating_sub(self.body.len())
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

    /// Reserves in every budget that applies, all or nothing. `Some` is the
    /// denial to send.
    pub fn decide(
        &mut self,
        config: &Budgets,
        api: Api,
        path_model: Option<&str>,
        complete: bool,
        host: &mut dyn Host,
        counters: &BudgetCounters,
    ) -> Option<budget_reply::Denial> {
        self.decided = true;
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
            return None;
        }
        let mut denied: Option<(Budget, u64)> = None;
        for a in &applied {
            let amount = budget::amount(a.budget, price, estimate);
            match budget::reserve(
                host.store(),
                a.budget,
                &a.key,
                amount,
                now_ns,
                config.max_counters,
            ) {
                Ok((Reserve::Taken { remaining, .. }, held)) => {
                    self.observed
                        .push((a.budget.name.clone(), budget::shown(a.budget, remaining)));
                    if a.budget.count != Count::Cost
                        && self.tokens_left.is_none_or(|(_, r, _)| remaining < r)
                    {
                        let (_, end) = window_at(a.budget.window, now_ns / 1_000_000_000);
                        let reset = end.saturating_sub(now_ns / 1_000_000_000);
                        self.tokens_left = Some((budget::limit_units(a.budget), remaining, reset));
                    }
                    self.held.push((a.budget.clone(), held));
                }
                Ok((Reserve::Denied { remaining }, _)) => {
                    self.observed
                        .push((a.budget.name.clone(), budget::shown(a.budget, remaining)));
                    denied = Some((a.budget.clone(), remaining));
                    break;
                }
                Err(budget::StoreFailed) => {
                    counters.store_failed.inc(host);
                    if config.failure_mode == crate::budget_config::FailureMode::Deny {
                        denied = Some((a.budget.clone(), 0));
                        break;
                    }
                }
            }
        }
        let Some((b, remaining)) = denied else {
            self.decision = "allowed";
            return None;
        };
        // All or nothing: give back what this call took so far.
        for (held_budget, held) in self.held.drain(..) {
            let _ = budget::reconcile(host.store(), &held_budget, &held, 0, now_ns);
        }
        self.decision = "denied";
        self.spent = Some(b.name.clone());
        counters.denied.inc(host);
        let now = now_ns / 1_000_000_000;
        let (start_end, window_secs) = {
            let (_, end) = window_at(b.window, now);
            let (_, next_end) = window_at(b.window, end);
            (end, next_end.saturating_sub(end))
        };
        let spent = Spent {
            name: &b.name,
            limit: budget::shown(&b, budget::limit_units(&b)),
            remaining: budget::shown(&b, remaining),
            window_secs,
            reset_secs: start_end.saturating_sub(now),
        };
        Some(budget_reply::denial(api, &spent))
    }

    /// The OpenAI-style remaining-token headers of an allowed call.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self.tokens_left {
            Some((limit, remaining, reset)) if self.decision == "allowed" => {
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
        if self.reconciled || !self.decided {
            return;
        }
        self.reconciled = true;
        let now_ns = host.now_ns();
        let model = response_model.or(self.model.as_deref());
        let price = budget::price_of(config, model);
        let mut reserved = 0u64;
        let mut charged = 0u64;
        let mut without_usage = false;
        for (b, held) in &self.held {
            let actual = match (usage, refund) {
                (_, true) => 0,
                (Some(u), false) => budget::amount(b, price, Tokens::from_usage(&u)),
                (None, false) => {
                    without_usage = true;
                    held.reserved
                }
            };
            if reserved == 0 {
                reserved = budget::shown(b, held.reserved);
                charged = budget::shown(b, actual);
            }
            match budget::reconcile(host.store(), b, held, actual, now_ns) {
                Ok(Some(used)) => {
                    let left = budget::limit_units(b).saturating_sub(used);
                    self.observed.push((b.name.clone(), budget::shown(b, left)));
                }
                Ok(None) => {}
                Err(_) => counters.store_failed.inc(host),
            }
        }
        if without_usage {
            counters.charged_without_usage.inc(host);
        }
        let decision = if without_usage {
            "charged_reservation"
        } else {
            self.decision
        };
        if !decision.is_empty() {
            host.set_state(state::DECISION, decision);
        }
        let name = self
            .spent
            .as_deref()
            .or_else(|| self.held.first().map(|(b, _)| b.name.as_str()));
        if let Some(name) = name {
            host.set_state(state::NAME, name);
        }
        if !self.held.is_empty() {
            host.set_state(state::RESERVED, &reserved.to_string());
            host.set_state(state::CHARGED, &charged.to_string());
        }
    }
}
