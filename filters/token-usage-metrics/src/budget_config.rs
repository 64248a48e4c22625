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
    /// when prices are dollars per million tokens).
    pub limit: f64,
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

fn budget_list(field: &str, list: &[Budget]) -> Result<(), ConfigError> {
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
        if !b.limit.is_finite() || b.limit <= 0.0 || b.limit > MAX_LIMIT {
            return Err(ConfigError::new(
                format!("{at}.limit"),
                format!("must be > 0 and at most {MAX_LIMIT}"),
            ));
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
                budget_list(&format!("{field}.{name}.{k}"), list)?;
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
        Ok(())
    }
}
