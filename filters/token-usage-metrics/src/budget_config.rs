//! pluginConfig of LLM token budgets: the `budgets` field of
//! token-usage-metrics.
//!
//! ```json
//! "budgets": {
//!   "plans": {
//!     "free": [{"name": "free-hourly", "window": "hour", "limit": 100000, "count": "total"}],
//!     "*":    [{"name": "monthly-usd", "window": "month", "limit": 50, "count": "cost"}]
//!   },
//!   "orgs": {"acme": [{"name": "acme-gpt4o-output", "window": "day", "limit": 2000000,
//!                      "count": "output", "models": ["gpt-4o*"]}]},
//!   "keys": {"key-ci": [{"name": "free-hourly", "window": "hour", "limit": 5000, "count": "total"}]},
//!   "prices": {"gpt-4o*": {"input": 2.5, "cached_input": 1.25, "output": 10}},
//!   "default_price": {"input": 5, "output": 15},
//!   "default_output_tokens": 4096,
//!   "bytes_per_input_token": 4
//! }
//! ```
//!
//! `limiter` picks where the counters live: `local` (this Envoy's shared
//! data, exact across its workers), `global` (the rate-limit service named
//! in `global`, one counter for the fleet; the service holds the limits) or
//! `local_then_global` (a local ceiling per Envoy, then the service).
//!
//! A request's budgets are its plan's (`plans.<plan>`, else `plans.*`), then
//! its organization's overrides, then its key's: an override with the name
//! of an earlier budget replaces it, another name adds a budget. Every
//! budget that applies must cover the reservation: the tightest decides.

use mesh_core::config_error::ConfigError;
use mesh_core::identity::{check_identity_header, header};
use mesh_core::metrics::sanitize_label_value;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// Budgets per plan (`x-mcp-plan`); `*` for plans not listed.
    pub plans: BTreeMap<String, Vec<Budget>>,
    /// Per-organization overrides, by organization id.
    pub orgs: BTreeMap<String, Vec<Budget>>,
    /// Per-key overrides, by key id (`x-mcp-key-id`).
    pub keys: BTreeMap<String, Vec<Budget>>,
    /// Prices for `count: cost` budgets, per model (a trailing `*` matches a
    /// prefix; the longest match wins), in any currency per million tokens.
    pub prices: BTreeMap<String, Price>,
    /// Price of a model no entry of `prices` names.
    pub default_price: Price,
    /// Output tokens reserved when the request names no maximum
    /// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
    /// `generationConfig.maxOutputTokens`).
    pub default_output_tokens: u64,
    /// Request-body bytes per input token, for the input estimate (4 is
    /// typical of English text; 1 reserves an upper bound).
    pub bytes_per_input_token: u64,
    /// Shared data failed (every compare-and-swap lost): `allow` or `deny`.
    pub failure_mode: FailureMode,
    /// Distinct budget counters (budget × organization or key) per Envoy;
    /// beyond it, new ones share one overflow counter per budget.
    pub max_counters: u32,
    pub plan_header: String,
    pub key_header: String,
    /// Send `x-ratelimit-*-tokens` on allowed LLM responses.
    pub response_headers: bool,
    pub limiter: Limiter,
    /// The rate-limit service of `global` and `local_then_global`.
    pub global: Option<BudgetService>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Limiter {
    #[default]
    Local,
    Global,
    LocalThenGlobal,
}

impl Limiter {
    pub fn local(self) -> bool {
        self != Limiter::Global
    }

    pub fn global(self) -> bool {
        self != Limiter::Local
    }
}

/// The rate-limit service (`envoy.service.ratelimit.v3`) that holds global
/// budgets. Each budget is one descriptor, `[{budget: <name>}, {org_id:
/// <org>}]` (`key_id` for `per: key`), charged by its own `hits_addend`:
/// tokens, or millionths of the cost unit for `count: cost`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BudgetService {
    /// Envoy cluster (HTTP/2) of the service.
    pub cluster: String,
    /// `RateLimitRequest.domain`.
    #[serde(default = "default_domain")]
    pub domain: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_domain() -> String {
    "mcp_budgets".to_string()
}

fn default_timeout_ms() -> u64 {
    50
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            plans: BTreeMap::new(),
            orgs: BTreeMap::new(),
            keys: BTreeMap::new(),
            prices: BTreeMap::new(),
            default_price: Price::default(),
            default_output_tokens: 4096,
            bytes_per_input_token: 4,
            failure_mode: FailureMode::Allow,
            max_counters: 10_000,
            plan_header: header::PLAN.to_string(),
            key_header: header::KEY_ID.to_string(),
            response_headers: true,
            limiter: Limiter::Local,
            global: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Names the budget in headers, metrics and logs, and in overrides.
    pub name: String,
    pub window: Window,
    /// Tokens, or for `count: cost` the currency unit of `prices` (dollars
    /// when prices are dollars per million tokens). Required unless
    /// `limiter` is `global`, where the rate-limit service holds it.
    #[serde(default)]
    pub limit: Option<f64>,
    #[serde(default)]
    pub count: Count,
    /// Whose counter: the organization's (default) or each key's own.
    #[serde(default)]
    pub per: Per,
    /// Only calls to these models (a trailing `*` matches a prefix). A call
    /// whose model is not known before it is sent counts against it too.
    #[serde(default)]
    pub models: Vec<String>,
}

/// Fixed windows in UTC: a minute, hour or day from its start; a calendar
/// month from the 1st, 00:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Count {
    Input,
    Output,
    #[default]
    Total,
    /// Tokens weighted by `prices`.
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Org,
    Key,
}

/// Price per million tokens of each kind; cached and cache-creation input
/// default to the input price, reasoning tokens are output tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_creation_input: Option<f64>,
    pub output: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    Allow,
    Deny,
}

/// Largest limit: the counters hold billionths of a unit in 64 bits.
pub const MAX_LIMIT: f64 = 1e10;
const MAX_PRICE: f64 = 1e6;

fn price(field: &str, p: &Price) -> Result<(), ConfigError> {
    let parts = [
        ("input", Some(p.input)),
        ("cached_input", p.cached_input),
        ("cache_creation_input", p.cache_creation_input),
        ("output", Some(p.output)),
    ];
    for (name, value) in parts {
        if let Some(v) = value {
            if !v.is_finite() || !(0.0..=MAX_PRICE).contains(&v) {
                return Err(ConfigError::new(
                    format!("{field}.{name}"),
                    format!("must be a price between 0 and {MAX_PRICE} per million tokens"),
                ));
            }
        }
    }
    Ok(())
}

fn pattern(field: &str, p: &str) -> Result<(), ConfigError> {
    let stem = p.strip_suffix('*').unwrap_or(p);
    if p.is_empty() || stem.contains('*') {
        return Err(ConfigError::new(
            field,
            "must be a model name, or a prefix ending in one `*`",
        ));
    }
    Ok(())
}

fn budget_list(field: &str, list: &[Budget], limiter: Limiter) -> Result<(), ConfigError> {
    for (i, b) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if b.name.is_empty() || sanitize_label_value(&b.name) != b.name || b.name.contains('|') {
            return Err(ConfigError::new(
                format!("{at}.name"),
                "must be 1-64 of [A-Za-z0-9_.:/@-] (it is a metric label)",
            ));
        }
        if list.iter().take(i).any(|o| o.name == b.name) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("`{}` is named twice in this list", b.name),
            ));
        }
        match (b.limit, limiter.local()) {
            (Some(l), true) if !l.is_finite() || l <= 0.0 || l > MAX_LIMIT => {
                return Err(ConfigError::new(
                    format!("{at}.limit"),
                    format!("must be > 0 and at most {MAX_LIMIT}"),
                ));
            }
            (None, true) => {
                return Err(ConfigError::new(
                    format!("{at}.limit"),
                    "required (leave it out only with limiter: global)",
                ));
            }
            (Some(_), false) => {
                return Err(ConfigError::new(
                    format!("{at}.limit"),
                    "with limiter: global the rate-limit service holds the limit; leave it out",
                ));
            }
            _ => {}
        }
        for (j, m) in b.models.iter().enumerate() {
            pattern(&format!("{at}.models[{j}]"), m)?;
        }
    }
    Ok(())
}

impl Budgets {
    pub fn validate_in(&self, field: &str) -> Result<(), ConfigError> {
        for (table, name) in [
            (&self.plans, "plans"),
            (&self.orgs, "orgs"),
            (&self.keys, "keys"),
        ] {
            for (k, list) in table {
                budget_list(&format!("{field}.{name}.{k}"), list, self.limiter)?;
            }
        }
        for (model, p) in &self.prices {
            pattern(&format!("{field}.prices.{model}"), model)?;
            price(&format!("{field}.prices.{model}"), p)?;
        }
        price(&format!("{field}.default_price"), &self.default_price)?;
        if self.default_output_tokens == 0 || self.default_output_tokens > 10_000_000 {
            return Err(ConfigError::new(
                format!("{field}.default_output_tokens"),
                "must be between 1 and 10000000",
            ));
        }
        if self.bytes_per_input_token == 0 || self.bytes_per_input_token > 64 {
            return Err(ConfigError::new(
                format!("{field}.bytes_per_input_token"),
                "must be between 1 and 64",
            ));
        }
        if self.max_counters == 0 {
            return Err(ConfigError::new(
                format!("{field}.max_counters"),
                "must be > 0",
            ));
        }
        check_identity_header(&format!("{field}.plan_header"), &self.plan_header)?;
        check_identity_header(&format!("{field}.key_header"), &self.key_header)?;
        match (&self.global, self.limiter.global()) {
            (None, true) => Err(ConfigError::new(
                format!("{field}.global"),
                "required with limiter: global or local_then_global",
            )),
            (Some(g), _) => g.validate_in(&format!("{field}.global")),
            (None, false) => Ok(()),
        }
    }
}

impl BudgetService {
    fn validate_in(&self, field: &str) -> Result<(), ConfigError> {
        mesh_core::rls::check_service(field, &self.cluster, &self.domain, self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), String> {
        let b: Budgets = serde_json::from_str(json).map_err(|e| e.to_string())?;
        b.validate_in("budgets").map_err(|e| e.to_string())
    }

    #[test]
    fn the_limiter_decides_where_limits_live_and_errors_name_the_field() {
        let daily = r#""plans": {"*": [{"name": "d", "window": "day"}]}"#;
        assert_eq!(
            check(&format!("{{{daily}}}")).unwrap_err(),
            "budgets.plans.*[0].limit: required (leave it out only with limiter: global)"
        );
        assert_eq!(
            check(&format!(r#"{{"limiter": "global", {daily}}}"#)).unwrap_err(),
            "budgets.global: required with limiter: global or local_then_global"
        );
        check(&format!(
            r#"{{"limiter": "global", "global": {{"cluster": "rls"}}, {daily}}}"#
        ))
        .unwrap();
        assert_eq!(
            check(
                r#"{"limiter": "global", "global": {"cluster": "rls"},
                    "plans": {"*": [{"name": "d", "window": "day", "limit": 5}]}}"#
            )
            .unwrap_err(),
            "budgets.plans.*[0].limit: with limiter: global the rate-limit service holds the limit; leave it out"
        );
        assert_eq!(
            check(r#"{"limiter": "local_then_global", "global": {"cluster": ""}}"#).unwrap_err(),
            "budgets.global.cluster: must not be empty"
        );
        assert_eq!(
            check(
                r#"{"limiter": "local_then_global", "global": {"cluster": "r", "timeout_ms": 0}}"#
            )
            .unwrap_err(),
            "budgets.global.timeout_ms: must be 1..=60000"
        );
        let g: Budgets =
            serde_json::from_str(r#"{"limiter": "local_then_global", "global": {"cluster": "r"}}"#)
                .unwrap();
        let service = g.global.unwrap();
        assert_eq!(
            (service.domain.as_str(), service.timeout_ms),
            ("mcp_budgets", 50)
        );
    }
}
