//! What one finished LLM call adds to the metrics and the filter state.
//!
//! Metrics (labels encoded with `mesh_core::metrics::labeled`, extracted by
//! the `stats_tags` in local/envoy.yaml; names in the OpenTelemetry GenAI
//! style, `gen_ai_provider_name` being `gen_ai.provider.name`, which replaced
//! `gen_ai.system` in the conventions):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mcp_llm_tokens_total` | counter | org_id, gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_response_model, gen_ai_token_type, service |
//! | `mcp_llm_requests_total` | counter | org_id, gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, outcome, service |
//! | `mcp_llm_request_tokens` | histogram | gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_token_type (input, output), service |
//! | `mcp_llm_usage_missing_total` | counter | gen_ai_provider_name, reason, service |
//! | `mcp_llm_sse_events_skipped_total` | counter | gen_ai_provider_name, service |
//!
//! Token types: `input` (all input, cached included), `output` (reasoning
//! included), `cached_input`, `cache_creation_input`, `reasoning`; the last
//! three only when non-zero. Outcomes: `ok`, `error`, `usage_missing`.

use mesh_core::identity::state;
use mesh_core::llm_usage::{MissingReason, Outcome, Usage};
use mesh_core::log_value::clean;
use mesh_core::metrics::{labeled, CardinalityCap, UNKNOWN};
use std::collections::BTreeMap;

pub const TOKENS_TOTAL: &str = "mcp_llm_tokens_total";
pub const REQUESTS_TOTAL: &str = "mcp_llm_requests_total";
pub const REQUEST_TOKENS: &str = "mcp_llm_request_tokens";
pub const USAGE_MISSING_TOTAL: &str = "mcp_llm_usage_missing_total";
/// SSE events over `max_sse_event_bytes`, skipped (their usage, if any, lost).
pub const SSE_EVENTS_SKIPPED_TOTAL: &str = "mcp_llm_sse_events_skipped_total";

fn usage_missing_name(provider: &str, reason: MissingReason, service: &str) -> String {
    labeled(
        USAGE_MISSING_TOTAL,
        &[
            ("gen_ai_provider_name", provider),
            ("reason", reason.label()),
            ("service", service),
        ],
    )
}

fn sse_skipped_name(provider: &str, service: &str) -> String {
    labeled(
        SSE_EVENTS_SKIPPED_TOTAL,
        &[("gen_ai_provider_name", provider), ("service", service)],
    )
}

/// The counters whose every label is known at configuration time (the
/// providers this config can name, each usage-missing reason): defined then,
/// so `rate()` over them is 0, not empty, before the first call. Series with
/// an organization or a model appear with their first call.
pub fn zero_series(providers: &[String], service: &str) -> Vec<String> {
    providers
        .iter()
        .flat_map(|p| {
            MissingReason::ALL
                .iter()
                .map(|r| usage_missing_name(p, *r, service))
                .chain(std::iter::once(sse_skipped_name(p, service)))
        })
        .collect()
}

/// The facts of one finished call.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    pub org: Option<&'a str>,
    pub provider: &'a str,
    /// `gen_ai.operation.name` (`chat`, `generate_content`).
    pub operation: &'a str,
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub usage: Option<Usage>,
    pub outcome: Option<Outcome>,
    pub skipped_events: u64,
    /// The HTTP status the provider answered with (0: none, e.g. a reset).
    pub status: u32,
}

impl Call<'_> {
    /// The provider took the request for its model: it answered, and not
    /// with a 4xx other than 429 (400, 404, 422: the request or the model
    /// was wrong). Only such calls admit a new model label.
    pub fn provider_accepted(&self) -> bool {
        self.status != 0 && !((400..500).contains(&self.status) && self.status != 429)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Counter(String, u64),
    Histogram(String, u64),
    /// A value to set (the remaining budget).
    Gauge(String, u64),
}

/// Label values of one VM, with their cardinality caps.
///
/// Model names come from clients (the request) and are only admitted to the
/// cap when the provider accepted the call ([`Call::provider_accepted`]), and each
/// organization has a model cap of its own: junk model names that a provider
/// refuses, or one organization's many models, cannot push another
/// organization's real model into `other` (issue 12).
#[derive(Debug, Clone)]
pub struct Labels {
    service: String,
    orgs: CardinalityCap,
    max_models: usize,
    models: BTreeMap<String, CardinalityCap>,
}

impl Labels {
    pub fn new(service: &str, max_orgs: usize, max_models: usize) -> Self {
        Self {
            service: service.to_string(),
            orgs: CardinalityCap::new(max_orgs),
            max_models,
            models: BTreeMap::new(),
        }
    }

    /// The remaining-budget gauge of `budget` for `org`, under the same
    /// organization cap as the usage metrics.
    pub fn budget_remaining(&mut self, budget: &str, org: &str, remaining: u64) -> Update {
        let org = self.orgs.admit(org);
        let name = labeled(
            "mcp_llm_budget_remaining",
            &[
                ("budget", budget),
                ("org_id", &org),
                ("service", &self.service),
            ],
        );
        Update::Gauge(name, remaining)
    }

    /// Metric updates for one finished call.
    pub fn updates(&mut self, call: &Call<'_>) -> Vec<Update> {
        let org = self.orgs.admit(call.org.unwrap_or(UNKNOWN));
        let accepted = call.provider_accepted();
        let max_models = self.max_models;
        // `org` is already capped, so this map holds at most max_orgs + 1 caps.
        let models = self
            .models
            .entry(org.clone())
            .or_insert_with(|| CardinalityCap::new(max_models));
        let mut model_label = |model: &str| {
            if accepted {
                models.admit(model)
            } else {
                models.lookup(model)
            }
        };
        // The request body may not name the model (or name it past the scan
        // budget): the response's model is the next best request model.
        let request_model = model_label(
            call.request_model
                .or(call.response_model)
                .unwrap_or(UNKNOWN),
        );
        let response_model = model_label(call.response_model.unwrap_or(UNKNOWN));
        let service = self.service.as_str();
        let provider = call.provider;
        let operation = call.operation;
        let outcome = call.outcome.unwrap_or(Outcome::Error);

        let mut out = vec![Update::Counter(
            labeled(
                REQUESTS_TOTAL,
                &[
                    ("org_id", &org),
                    ("gen_ai_operation_name", operation),
                    ("gen_ai_provider_name", provider),
                    ("gen_ai_request_model", &request_model),
                    ("outcome", outcome.label()),
                    ("service", service),
                ],
            ),
            1,
        )];
        if let Outcome::UsageMissing(reason) = outcome {
            out.push(Update::Counter(
                usage_missing_name(provider, reason, service),
                1,
            ));
        }
        if call.skipped_events > 0 {
            out.push(Update::Counter(
                sse_skipped_name(provider, service),
                call.skipped_events,
            ));
        }
        let Some(usage) = call.usage else {
            return out;
        };
        let types = [
            ("input", usage.input, true),
            ("output", usage.output, true),
            ("cached_input", usage.cached_input, false),
            ("cache_creation_input", usage.cache_creation_input, false),
            ("reasoning", usage.reasoning, false),
        ];
        for (token_type, count, always) in types {
            if count == 0 && !always {
                continue;
            }
            out.push(Update::Counter(
                labeled(
                    TOKENS_TOTAL,
                    &[
                        ("org_id", &org),
                        ("gen_ai_operation_name", operation),
                        ("gen_ai_provider_name", provider),
                        ("gen_ai_request_model", &request_model),
                        ("gen_ai_response_model", &response_model),
                        ("gen_ai_token_type", token_type),
                        ("service", service),
                    ],
                ),
                count,
            ));
            if always {
                out.push(Update::Histogram(
                    labeled(
                        REQUEST_TOKENS,
                        &[
                            ("gen_ai_operation_name", operation),
                            ("gen_ai_provider_name", provider),
                            ("gen_ai_request_model", &request_model),
                            ("gen_ai_token_type", token_type),
                            ("service", service),
                        ],
                    ),
                    count,
                ));
            }
        }
        out
    }
}

/// Longest model name written to filter state (real ones are under 100).
pub const MAX_MODEL_LOG_LEN: usize = 128;

/// Filter-state values for the access log (`%FILTER_STATE(wasm.<key>:PLAIN)%`).
pub fn filter_state(call: &Call<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![(state::LLM_PROVIDER, call.provider.to_string())];
    // Models come from the client (request body, Gemini path) or the
    // provider: capped and without control characters, like every logged
    // client value.
    let model = call.response_model.or(call.request_model);
    if let Some(model) = model.and_then(|m| clean(m.as_bytes(), MAX_MODEL_LOG_LEN)) {
        out.push((state::LLM_MODEL, model));
    }
    if let Some(outcome) = call.outcome {
        out.push((state::LLM_OUTCOME, outcome.label().to_string()));
    }
    if let Some(u) = call.usage {
        out.push((state::TOKENS_INPUT, u.input.to_string()));
        out.push((state::TOKENS_OUTPUT, u.output.to_string()));
        out.push((state::TOKENS_CACHED_INPUT, u.cached_input.to_string()));
        out.push((state::TOKENS_REASONING, u.reasoning.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_models_are_capped_and_cleaned() {
        let long = "g".repeat(40 * 1024);
        let hostile = "gpt-4o\u{1b}[2J\r\n\u{2028}x";
        for (model, want) in [
            (long.as_str(), "g".repeat(MAX_MODEL_LOG_LEN)),
            (
                hostile,
                "gpt-4o\u{FFFD}[2J\u{FFFD}\u{FFFD}\u{FFFD}x".to_string(),
            ),
        ] {
            let call = Call {
                org: None,
                provider: "openai",
                operation: "chat",
                request_model: Some(model),
                response_model: None,
                usage: None,
                outcome: None,
                skipped_events: 0,
                status: 200,
            };
            let fields = filter_state(&call);
            let logged = fields.iter().find(|(k, _)| *k == state::LLM_MODEL).unwrap();
            assert_eq!(logged.1, want);
        }
    }
    use mesh_core::llm_usage::MissingReason;

    fn usage() -> Usage {
        Usage {
            input: 100,
            output: 20,
            cached_input: 60,
            cache_creation_input: 0,
            reasoning: 5,
        }
    }

    fn counters(updates: &[Update]) -> Vec<(String, u64)> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::Counter(n, v) => Some((n.clone(), *v)),
                Update::Histogram(..) | Update::Gauge(..) => None,
            })
            .collect()
    }

    #[test]
    fn ok_call_counts_each_token_type_once() {
        let mut labels = Labels::new("mcp-llm", 10, 10);
        let call = Call {
            org: Some("acme"),
            provider: "openai",
            operation: "chat",
            request_model: Some("gpt-4o"),
            response_model: Some("gpt-4o-2024-08-06"),
            usage: Some(usage()),
            outcome: Some(Outcome::Ok),
            skipped_events: 0,
            status: 200,
        };
        let updates = labels.updates(&call);
        let base =
            "org_id=.=acme;.;gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;";
        assert_eq!(
            counters(&updates),
            vec![
                (format!("{base}outcome=.=ok;.;service=.=mcp-llm;.;mcp_llm_requests_total"), 1),
                (format!("{base}gen_ai_response_model=.=gpt-4o-2024-08-06;.;gen_ai_token_type=.=input;.;service=.=mcp-llm;.;mcp_llm_tokens_total"), 100),
                (format!("{base}gen_ai_response_model=.=gpt-4o-2024-08-06;.;gen_ai_token_type=.=output;.;service=.=mcp-llm;.;mcp_llm_tokens_total"), 20),
                (format!("{base}gen_ai_response_model=.=gpt-4o-2024-08-06;.;gen_ai_token_type=.=cached_input;.;service=.=mcp-llm;.;mcp_llm_tokens_total"), 60),
                (format!("{base}gen_ai_response_model=.=gpt-4o-2024-08-06;.;gen_ai_token_type=.=reasoning;.;service=.=mcp-llm;.;mcp_llm_tokens_total"), 5),
            ]
        );
        let histograms: Vec<_> = updates
            .iter()
            .filter(|u| matches!(u, Update::Histogram(..)))
            .collect();
        assert_eq!(
            histograms,
            vec![
                &Update::Histogram("gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;gen_ai_token_type=.=input;.;service=.=mcp-llm;.;mcp_llm_request_tokens".into(), 100),
                &Update::Histogram("gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;gen_ai_token_type=.=output;.;service=.=mcp-llm;.;mcp_llm_request_tokens".into(), 20),
            ]
        );
    }

    #[test]
    fn missing_usage_is_counted_with_its_reason() {
        let mut labels = Labels::new("svc", 10, 10);
        let call = Call {
            provider: "anthropic",
            operation: "chat",
            outcome: Some(Outcome::UsageMissing(MissingReason::Truncated)),
            status: 200,
            ..Call::default()
        };
        assert_eq!(
            counters(&labels.updates(&call)),
            vec![
                ("org_id=.=unknown;.;gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=anthropic;.;gen_ai_request_model=.=unknown;.;outcome=.=usage_missing;.;service=.=svc;.;mcp_llm_requests_total".into(), 1),
                ("gen_ai_provider_name=.=anthropic;.;reason=.=truncated;.;service=.=svc;.;mcp_llm_usage_missing_total".into(), 1),
            ]
        );
    }

    #[test]
    fn skipped_sse_events_are_counted() {
        let mut labels = Labels::new("svc", 10, 10);
        let call = Call {
            provider: "gcp.gemini",
            outcome: Some(Outcome::Ok),
            usage: Some(usage()),
            skipped_events: 2,
            status: 200,
            ..Call::default()
        };
        assert!(counters(&labels.updates(&call)).contains(&(
            "gen_ai_provider_name=.=gcp.gemini;.;service=.=svc;.;mcp_llm_sse_events_skipped_total"
                .into(),
            2
        )));
    }

    #[test]
    fn caps_send_new_orgs_and_models_to_other_and_values_are_sanitized() {
        let mut labels = Labels::new("svc", 1, 1);
        let call = |org, model| Call {
            org: Some(org),
            provider: "openai",
            operation: "chat",
            request_model: Some(model),
            response_model: Some(model),
            usage: Some(usage()),
            outcome: Some(Outcome::Ok),
            skipped_events: 0,
            status: 200,
        };
        labels.updates(&call("acme", "m1"));
        // A second organization is `other`, whose model cap is its own.
        let names = counters(&labels.updates(&call("evil;.;org_id=.=x", "m2")));
        assert!(
            names[0].0.starts_with(
                "org_id=.=other;.;gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=m2;.;"
            ),
            "{}",
            names[0].0
        );
        let names = counters(&labels.updates(&call("acme", "m1")));
        assert!(names[0].0.starts_with(
            "org_id=.=acme;.;gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=m1;.;"
        ));
        // acme's one model slot is taken.
        let names = counters(&labels.updates(&call("acme", "m3")));
        assert!(names[0].0.contains(";gen_ai_request_model=.=other;.;"));
    }

    /// Junk model names the provider refuses do not use up the cap (issue 12).
    #[test]
    fn refused_calls_cannot_poison_the_model_cap() {
        let mut labels = Labels::new("svc", 10, 3);
        fn call<'a>(org: &'a str, model: &'a str, status: u32) -> Call<'a> {
            Call {
                org: Some(org),
                provider: "openai",
                operation: "chat",
                request_model: Some(model),
                response_model: None,
                usage: None,
                outcome: Some(if status == 200 {
                    Outcome::Ok
                } else {
                    Outcome::Error
                }),
                skipped_events: 0,
                status,
            }
        }
        for i in 0..50 {
            let junk = format!("junk-{i}");
            let names = counters(&labels.updates(&call("evil", &junk, 404)));
            assert!(names[0].0.contains(";gen_ai_request_model=.=other;.;"));
        }
        // A capacity error is no verdict on the model: it is admitted.
        let names = counters(&labels.updates(&call("evil", "gpt-4o", 429)));
        assert!(
            names[0].0.contains(";gen_ai_request_model=.=gpt-4o;.;"),
            "{}",
            names[0].0
        );
        // Another organization's models were never at stake.
        let names = counters(&labels.updates(&call("acme", "gpt-4o-mini", 200)));
        assert!(names[0]
            .0
            .contains(";gen_ai_request_model=.=gpt-4o-mini;.;"));
    }

    #[test]
    fn request_model_falls_back_to_the_response_model() {
        let mut labels = Labels::new("svc", 10, 10);
        let call = Call {
            provider: "openai",
            operation: "chat",
            response_model: Some("gpt-4o-mini-2024-07-18"),
            outcome: Some(Outcome::Ok),
            usage: Some(Usage::default()),
            status: 200,
            ..Call::default()
        };
        let names = counters(&labels.updates(&call));
        assert!(names[0]
            .0
            .contains("gen_ai_request_model=.=gpt-4o-mini-2024-07-18;.;"));
    }

    #[test]
    fn filter_state_for_the_access_log() {
        let call = Call {
            provider: "gcp.gemini",
            request_model: Some("gemini-2.5-flash"),
            usage: Some(usage()),
            outcome: Some(Outcome::Ok),
            status: 200,
            ..Call::default()
        };
        let st = filter_state(&call);
        assert!(st.contains(&("mcp_tokens_input", "100".into())));
        assert!(st.contains(&("mcp_tokens_output", "20".into())));
        assert!(st.contains(&("mcp_llm_provider", "gcp.gemini".into())));
        assert!(st.contains(&("mcp_llm_model", "gemini-2.5-flash".into())));
        assert!(st.contains(&("mcp_llm_outcome", "ok".into())));
        let none = filter_state(&Call {
            provider: "openai",
            operation: "chat",
            status: 200,
            ..Call::default()
        });
        assert!(none.iter().all(|(k, _)| !k.starts_with("mcp_tokens")));
    }
}
