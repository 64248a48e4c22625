//! pluginConfig of org-rate-limit.
//!
//! ```json
//! {
//!   "mode": "enforce",
//!   "default_plan": "free",
//!   "plans": {
//!     "free": {"requests_per_minute": 60, "burst": 20, "route_classes": {"llm": {"requests_per_minute": 10}}},
//!     "pro":  {"requests_per_second": 20, "burst": 100}
//!   },
//!   "organizations": {"acme": {"plan": "pro"}, "bigco": {"requests_per_second": 200, "burst": 1000}},
//!   "route_classes": [{"name": "llm", "path_prefixes": ["/v1/", "/v1beta/"]}],
//!   "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
//!   "without_identity": "anonymous",
//!   "fail_mode": "open",
//!   "response_headers": "always"
//! }
//! ```
//!
//! The plan of a request is, in order: the organization's override in
//! `organizations`, the plan header set by api-key-auth if it names a
//! configured plan, else `default_plan`. Names follow Envoy's local_ratelimit
//! and ratelimit filters where one exists (`failure_mode` after
//! `failure_mode_deny`, `domain`, `timeout`, descriptors).

use mesh_core::config_error::{ConfigError, Validate};
use mesh_core::identity::{check_identity_header, header};
use mesh_core::token_bucket::{Limit, MAX_BURST};
use serde::Deserialize;
use std::collections::BTreeMap;

const SECOND_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Over the limit: 429.
    #[default]
    Enforce,
    /// Count and log what would have been limited; let everything through.
    Shadow,
}

/// Where the limit is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Limiter {
    /// Token buckets in this Envoy's shared data (exact across its workers).
    #[default]
    Local,
    /// An external rate-limit service (envoy.service.ratelimit.v3), see `global`.
    Global,
    /// The local bucket first (cheap, rejects the obvious), then the service.
    LocalThenGlobal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the request through (and count it in `decision="fail_open"`).
    #[default]
    Open,
    /// Answer 429 as if the limit were reached.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WithoutIdentity {
    /// Requests without an organization share one `anonymous` bucket.
    #[default]
    Anonymous,
    /// Requests without an organization get 403 `identity_required`.
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResponseHeaders {
    /// Rate-limit headers on 429 answers only.
    #[default]
    Limited,
    /// On every response of a rate-limited request (allowed ones too).
    Always,
}

/// A rate: exactly one of `requests_per_second` / `_minute` / `_hour`, and
/// the bucket size `burst` (default: the rate's own count).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    #[serde(default)]
    pub requests_per_second: Option<u64>,
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub requests_per_hour: Option<u64>,
    #[serde(default)]
    pub burst: Option<u64>,
    /// Per route class limits of this plan (`plans` only). A class without an
    /// entry uses the plan's own rate, in a bucket of its own.
    #[serde(default)]
    pub route_classes: BTreeMap<String, LimitSpec>,
    /// `organizations` only: the plan this organization is on, whatever its
    /// key says. Exclusive with a rate of its own.
    #[serde(default)]
    pub plan: Option<String>,
}

impl LimitSpec {
    fn has_rate(&self) -> bool {
        self.requests_per_second.is_some()
            || self.requests_per_minute.is_some()
            || self.requests_per_hour.is_some()
    }

    /// The bucket limit; `field` prefixes every error.
    fn limit(&self, field: &str) -> Result<Limit, ConfigError> {
        let rates = [
            (self.requests_per_second, SECOND_NS, "requests_per_second"),
            (
                self.requests_per_minute,
                60 * SECOND_NS,
                "requests_per_minute",
            ),
            (
                self.requests_per_hour,
                3600 * SECOND_NS,
                "requests_per_hour",
            ),
        ];
        let mut set = rates.iter().filter_map(|(v, p, n)| v.map(|v| (v, *p, *n)));
        let Some((rate, period_ns, name)) = set.next() else {
            return Err(ConfigError::new(
                field,
                "needs one of requests_per_second, requests_per_minute, requests_per_hour",
            ));
        };
        if let Some((_, _, other)) = set.next() {
            return Err(ConfigError::new(
                field,
                format!("set only one of {name} and {other}"),
            ));
        }
        if rate == 0 {
            return Err(ConfigError::new(format!("{field}.{name}"), "must be > 0"));
        }
        let burst = self.burst.unwrap_or(rate);
        if burst == 0 {
            return Err(ConfigError::new(format!("{field}.burst"), "must be > 0"));
        }
        if burst > MAX_BURST {
            return Err(ConfigError::new(
                format!("{field}.burst"),
                format!("must be <= {MAX_BURST}"),
            ));
        }
        Ok(Limit::new(rate, period_ns, burst))
    }
}

/// A bucket of its own per organization for requests whose path starts with
/// one of `path_prefixes` (first class in list order wins).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteClass {
    pub name: String,
    pub path_prefixes: Vec<String>,
}

/// What a request costs, in tokens. Rules are tried in order; every field
/// that is set must match; the first match wins; no match costs
/// `default_cost`. `mcp_method` / `tool` look into the JSON-RPC body (read up
/// to `max_body_bytes`), and every message of a batch is charged.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CostRule {
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// HTTP method, e.g. `POST`.
    #[serde(default)]
    pub http_method: Option<String>,
    /// JSON-RPC method, e.g. `tools/call`.
    #[serde(default)]
    pub mcp_method: Option<String>,
    /// Tool name of a `tools/call` (implies `mcp_method: tools/call`).
    #[serde(default)]
    pub tool: Option<String>,
    /// Tokens taken; 0 makes matching requests free (never limited).
    pub cost: u64,
}

impl CostRule {
    pub fn needs_body(&self) -> bool {
        self.mcp_method.is_some() || self.tool.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub limiter: Limiter,
    /// Request header with the verified organization (set by api-key-auth).
    pub org_header: String,
    /// Request header with the organization's plan (set by api-key-auth).
    pub plan_header: String,
    pub default_plan: String,
    pub plans: BTreeMap<String, LimitSpec>,
    /// Per-organization overrides: `{"plan": "pro"}` or a rate of its own.
    pub organizations: BTreeMap<String, LimitSpec>,
    pub route_classes: Vec<RouteClass>,
    pub costs: Vec<CostRule>,
    pub default_cost: u64,
    pub without_identity: WithoutIdentity,
    /// Plan of the anonymous buckets (default: `default_plan`).
    pub anonymous_plan: Option<String>,
    /// How anonymous requests are told apart: a bucket per client address
    /// (the downstream peer by default), so that no client can drain the
    /// bucket of all the others.
    pub anonymous_client: AnonymousClient,
    /// When shared data keeps failing (or, in global mode, the service).
    pub failure_mode: FailMode,
    pub response_headers: ResponseHeaders,
    /// At most this many organization buckets (all route classes together)
    /// are created in shared data (Envoy cannot delete keys); organizations
    /// beyond it share one overflow bucket per plan and route class.
    pub max_buckets: u32,
    /// Compare-and-swap attempts before `failure_mode` applies.
    pub max_cas_retries: u32,
    /// How much of a JSON-RPC body is read for `mcp_method` / `tool` costs and
    /// for the `id` of a 429 answer.
    pub max_body_bytes: usize,
    /// Longer organization ids count as no identity.
    pub max_org_id_bytes: usize,
    /// The rate-limit service (`limiter: global | local_then_global`).
    pub global: Option<GlobalConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let mut plans = BTreeMap::new();
        plans.insert(
            "free".to_string(),
            LimitSpec {
                requests_per_minute: Some(60),
                ..LimitSpec::default()
            },
        );
        Self {
            mode: Mode::Enforce,
            limiter: Limiter::Local,
            org_header: header::ORG_ID.into(),
            plan_header: header::PLAN.into(),
            default_plan: "free".into(),
            plans,
            organizations: BTreeMap::new(),
            route_classes: Vec::new(),
            costs: Vec::new(),
            default_cost: 1,
            without_identity: WithoutIdentity::Anonymous,
            anonymous_plan: None,
            anonymous_client: AnonymousClient::default(),
            failure_mode: FailMode::Open,
            response_headers: ResponseHeaders::Limited,
            max_buckets: 10_000,
            max_cas_retries: 32,
            max_body_bytes: 16 * 1024,
            max_org_id_bytes: 256,
            global: None,
        }
    }
}

/// Plan, class and organization names end up in shared-data keys, metric
/// labels and headers: a small safe alphabet.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("`{name}`: 1-64 characters of a-z A-Z 0-9 _ - ."),
        ))
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        check_identity_header("org_header", &self.org_header)?;
        check_identity_header("plan_header", &self.plan_header)?;
        if self.plans.is_empty() {
            return Err(ConfigError::new("plans", "must name at least one plan"));
        }
        let mut class_names: Vec<&str> = Vec::new();
        for (i, class) in self.route_classes.iter().enumerate() {
            check_name(&format!("route_classes[{i}].name"), &class.name)?;
            if class.name == crate::rules::DEFAULT_CLASS {
                return Err(ConfigError::new(
                    format!("route_classes[{i}].name"),
                    "`default` is the class of every other request",
                ));
            }
            if class_names.contains(&class.name.as_str()) {
                return Err(ConfigError::new(
                    format!("route_classes[{i}].name"),
                    format!("duplicate class `{}`", class.name),
                ));
            }
            class_names.push(&class.name);
            if class.path_prefixes.is_empty() {
                return Err(ConfigError::new(
                    format!("route_classes[{i}].path_prefixes"),
                    "must not be empty",
                ));
            }
            for (j, p) in class.path_prefixes.iter().enumerate() {
                if !p.starts_with('/') {
                    return Err(ConfigError::new(
                        format!("route_classes[{i}].path_prefixes[{j}]"),
                        "must start with /",
                    ));
                }
            }
        }
        for (name, plan) in &self.plans {
            let field = format!("plans.{name}");
            check_name(&field, name)?;
            if plan.plan.is_some() {
                return Err(ConfigError::new(
                    format!("{field}.plan"),
                    "only allowed in organizations",
                ));
            }
            plan.limit(&field)?;
            for (class, spec) in &plan.route_classes {
                let cfield = format!("{field}.route_classes.{class}");
                if !class_names.contains(&class.as_str()) {
                    return Err(ConfigError::new(
                        cfield,
                        "unknown route class (not in route_classes)",
                    ));
                }
                if spec.plan.is_some() || !spec.route_classes.is_empty() {
                    return Err(ConfigError::new(cfield, "takes only a rate and burst"));
                }
                spec.limit(&cfield)?;
            }
        }
        let known_plan = |field: &str, plan: &str| {
            if self.plans.contains_key(plan) {
                Ok(())
            } else {
                Err(ConfigError::new(field, format!("unknown plan `{plan}`")))
            }
        };
        known_plan("default_plan", &self.default_plan)?;
        if self.anonymous_client.from == ClientSource::Header {
            let h = &self.anonymous_client.header;
            if h.is_empty()
                || h.starts_with(':')
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
            {
                return Err(ConfigError::new(
                    "anonymous_client.header",
                    "must be a lowercase HTTP header name",
                ));
            }
        }
        if let Some(plan) = &self.anonymous_plan {
            known_plan("anonymous_plan", plan)?;
        }
        for (org, spec) in &self.organizations {
            let field = format!("organizations.{org}");
            if org.is_empty() || org.len() > self.max_org_id_bytes {
                return Err(ConfigError::new(
                    field,
                    format!("organization ids are 1-{} bytes", self.max_org_id_bytes),
                ));
            }
            if !spec.route_classes.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.route_classes"),
                    "only allowed in plans",
                ));
            }
            match (&spec.plan, spec.has_rate() || spec.burst.is_some()) {
                (Some(plan), false) => known_plan(&format!("{field}.plan"), plan)?,
                (None, true) => {
                    spec.limit(&field)?;
                }
                (Some(_), true) => {
                    return Err(ConfigError::new(
                        field,
                        "set either plan or a rate of its own, not both",
                    ))
                }
                (None, false) => {
                    return Err(ConfigError::new(field, "needs plan or a rate"));
                }
            }
        }
        for (i, rule) in self.costs.iter().enumerate() {
            let field = format!("costs[{i}]");
            if let Some(p) = &rule.path_prefix {
                if !p.starts_with('/') {
                    return Err(ConfigError::new(
                        format!("{field}.path_prefix"),
                        "must start with /",
                    ));
                }
            }
            if rule.tool.is_some()
                && rule
                    .mcp_method
                    .as_deref()
                    .is_some_and(|m| m != "tools/call")
            {
                return Err(ConfigError::new(
                    format!("{field}.tool"),
                    "only matches mcp_method tools/call",
                ));
            }
            if let Some(m) = &rule.http_method {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(ConfigError::new(
                        format!("{field}.http_method"),
                        "must be an uppercase HTTP method",
                    ));
                }
            }
        }
        if self.max_buckets == 0 {
            return Err(ConfigError::new("max_buckets", "must be > 0"));
        }
        if self.max_cas_retries == 0 {
            return Err(ConfigError::new("max_cas_retries", "must be > 0"));
        }
        if self.max_org_id_bytes == 0 || self.max_org_id_bytes > 4096 {
            return Err(ConfigError::new("max_org_id_bytes", "must be 1..=4096"));
        }
        // Envoy holds the body while it is read; stay well below its default
        // 1 MiB per-connection buffer limit (413 beyond it).
        if self.max_body_bytes > 1 << 19 {
            return Err(ConfigError::new("max_body_bytes", "must be <= 524288"));
        }
        self.check_costs_fit()?;
        match (self.limiter, &self.global) {
            (Limiter::Local, _) => {}
            (_, None) => {
                return Err(ConfigError::new(
                    "global",
                    "required when limiter is global or local_then_global",
                ))
            }
            (_, Some(global)) => global.validate_in("global")?,
        }
        Ok(())
    }
}

impl Config {
    /// Every cost must fit in every bucket, or a request could never pass.
    fn check_costs_fit(&self) -> Result<(), ConfigError> {
        let costs = std::iter::once(("default_cost".to_string(), self.default_cost)).chain(
            self.costs
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("costs[{i}]"), r.cost)),
        );
        let Some((what, cost)) = costs.max_by_key(|(_, c)| *c) else {
            return Ok(());
        };
        let mut buckets: Vec<(String, &LimitSpec)> = Vec::new();
        for (name, plan) in &self.plans {
            buckets.push((format!("plans.{name}"), plan));
            for (class, spec) in &plan.route_classes {
                buckets.push((format!("plans.{name}.route_classes.{class}"), spec));
            }
        }
        for (org, spec) in &self.organizations {
            if spec.plan.is_none() {
                buckets.push((format!("organizations.{org}"), spec));
            }
        }
        for (field, spec) in buckets {
            let limit = spec.limit(&field)?;
            if limit.burst < cost {
                return Err(ConfigError::new(
                    format!("{field}.burst"),
                    format!("must be >= cost {cost} of {what}"),
                ));
            }
        }
        Ok(())
    }

    /// The bucket limit of a validated spec (validation proved it exists).
    pub(crate) fn limit_of(spec: &LimitSpec) -> Option<Limit> {
        spec.limit("").ok()
    }
}

// ---- the rate-limit service (`global`; its descriptors are built in `global`) ----

/// Where a descriptor entry's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The organization (`anonymous` for the shared anonymous bucket).
    Org,
    /// The plan the request is charged under (or `organization`).
    Plan,
    /// The route class (`default` when none matches).
    RouteClass,
    /// The JSON-RPC method (body read up to `max_body_bytes`).
    McpMethod,
    /// The tool of a `tools/call`.
    Tool,
    /// The HTTP method.
    HttpMethod,
}

/// `{"key": "org_id", "from": "org"}` or `{"key": "tier", "value": "gold"}`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DescriptorEntry {
    pub key: String,
    #[serde(default)]
    pub from: Option<Source>,
    /// A fixed value (like Envoy's `generic_key`).
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Envoy cluster (HTTP/2) of the rate-limit service.
    pub cluster: String,
    /// `RateLimitRequest.domain` (the Limitador namespace).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Per-call deadline; then `failure_mode` applies.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_descriptors")]
    pub descriptors: Vec<Vec<DescriptorEntry>>,
    /// Overrides the top-level `failure_mode` for service errors and timeouts.
    #[serde(default)]
    pub failure_mode: Option<FailMode>,
}

fn default_domain() -> String {
    "mcp".into()
}

fn default_timeout_ms() -> u64 {
    20
}

fn default_descriptors() -> Vec<Vec<DescriptorEntry>> {
    let entry = |key: &str, from| DescriptorEntry {
        key: key.into(),
        from: Some(from),
        value: None,
    };
    vec![vec![
        entry("plan", Source::Plan),
        entry("org_id", Source::Org),
    ]]
}

impl GlobalConfig {
    pub fn validate_in(&self, field: &str) -> Result<(), ConfigError> {
        mesh_core::rls::check_service(field, &self.cluster, &self.domain, self.timeout_ms)?;
        if self.descriptors.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.descriptors"),
                "must not be empty",
            ));
        }
        for (i, d) in self.descriptors.iter().enumerate() {
            if d.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.descriptors[{i}]"),
                    "needs at least one entry",
                ));
            }
            for (j, e) in d.iter().enumerate() {
                let f = format!("{field}.descriptors[{i}][{j}]");
                if e.key.is_empty() {
                    return Err(ConfigError::new(format!("{f}.key"), "must not be empty"));
                }
                if e.from.is_some() == e.value.is_some() {
                    return Err(ConfigError::new(f, "set exactly one of from and value"));
                }
            }
        }
        Ok(())
    }
}

// ---- anonymous clients (`anonymous_client`; the key is made in `client`) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// The downstream peer address.
    SourceAddress,
    /// The header named in `header`.
    Header,
    /// One anonymous bucket per route class for everyone (the old behaviour).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AnonymousClient {
    pub from: ClientSource,
    /// With `from: header`: the header (`x-forwarded-for`, or a one-value
    /// header such as `x-envoy-external-address`).
    pub header: String,
    /// With `from: header`: comma-separated entries skipped from the right
    /// (the ones your own proxies appended).
    pub trusted_hops: u32,
}

impl Default for AnonymousClient {
    fn default() -> Self {
        Self {
            from: ClientSource::SourceAddress,
            header: "x-forwarded-for".into(),
            trusted_hops: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    fn err(json: &str) -> String {
        load::<Config>(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let c = load::<Config>(b"").unwrap();
        assert_eq!(c.default_plan, "free");
        assert_eq!(c.org_header, "x-mcp-org-id");
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.failure_mode, FailMode::Open);
    }

    #[test]
    fn full_example_is_valid() {
        let c = load::<Config>(
            br#"{
              "mode": "shadow",
              "default_plan": "free",
              "plans": {
                "free": {"requests_per_minute": 60, "burst": 20, "route_classes": {"llm": {"requests_per_minute": 10}}},
                "pro": {"requests_per_second": 20, "burst": 100}
              },
              "organizations": {"acme": {"plan": "pro"}, "bigco": {"requests_per_hour": 100000, "burst": 1000}},
              "route_classes": [{"name": "llm", "path_prefixes": ["/v1/", "/v1beta/"]}],
              "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
              "without_identity": "deny",
              "failure_mode": "closed",
              "response_headers": "always"
            }"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Shadow);
        assert_eq!(c.without_identity, WithoutIdentity::Deny);
        assert!(c.costs[0].needs_body());
    }

    #[test]
    fn zero_and_negative_limits_name_the_field() {
        assert_eq!(
            err(r#"{"plans": {"free": {"requests_per_minute": 0}}}"#),
            "plans.free.requests_per_minute: must be > 0"
        );
        assert!(err(r#"{"plans": {"free": {"requests_per_minute": -5}}}"#)
            .starts_with("plans.free.requests_per_minute: invalid value"));
        assert_eq!(
            err(r#"{"plans": {"free": {"requests_per_minute": 5, "burst": 0}}}"#),
            "plans.free.burst: must be > 0"
        );
        assert_eq!(
            err(r#"{"plans": {"free": {"requests_per_minute": 5, "burst": 2000000000}}}"#),
            "plans.free.burst: must be <= 1000000000"
        );
    }

    #[test]
    fn one_rate_per_plan() {
        assert_eq!(
            err(r#"{"plans": {"free": {"burst": 5}}}"#),
            "plans.free: needs one of requests_per_second, requests_per_minute, requests_per_hour"
        );
        assert_eq!(
            err(r#"{"plans": {"free": {"requests_per_second": 1, "requests_per_minute": 5}}}"#),
            "plans.free: set only one of requests_per_second and requests_per_minute"
        );
    }

    #[test]
    fn unknown_plans_are_refused() {
        assert_eq!(
            err(r#"{"default_plan": "gold"}"#),
            "default_plan: unknown plan `gold`"
        );
        assert_eq!(
            err(r#"{"organizations": {"acme": {"plan": "gold"}}}"#),
            "organizations.acme.plan: unknown plan `gold`"
        );
        assert_eq!(
            err(r#"{"anonymous_plan": "x"}"#),
            "anonymous_plan: unknown plan `x`"
        );
    }

    #[test]
    fn cost_larger_than_burst_is_refused() {
        assert_eq!(
            err(
                r#"{"plans": {"free": {"requests_per_minute": 60, "burst": 4}},
                    "costs": [{"cost": 1}, {"cost": 2}, {"tool": "run_debate_round", "cost": 5}]}"#
            ),
            "plans.free.burst: must be >= cost 5 of costs[2]"
        );
        assert_eq!(
            err(
                r#"{"plans": {"free": {"requests_per_minute": 60, "route_classes": {"llm": {"requests_per_minute": 2}}}},
                    "route_classes": [{"name": "llm", "path_prefixes": ["/v1/"]}], "default_cost": 3}"#
            ),
            "plans.free.route_classes.llm.burst: must be >= cost 3 of default_cost"
        );
    }

    #[test]
    fn route_class_mistakes() {
        assert_eq!(
            err(
                r#"{"plans": {"free": {"requests_per_minute": 6, "route_classes": {"llm": {"requests_per_minute": 2}}}}}"#
            ),
            "plans.free.route_classes.llm: unknown route class (not in route_classes)"
        );
        assert_eq!(
            err(
                r#"{"route_classes": [{"name": "a", "path_prefixes": ["/a"]}, {"name": "a", "path_prefixes": ["/b"]}]}"#
            ),
            "route_classes[1].name: duplicate class `a`"
        );
        assert_eq!(
            err(r#"{"route_classes": [{"name": "a", "path_prefixes": ["v1"]}]}"#),
            "route_classes[0].path_prefixes[0]: must start with /"
        );
        assert!(
            err(r#"{"route_classes": [{"name": "a b", "path_prefixes": ["/"]}]}"#)
                .starts_with("route_classes[0].name: `a b`")
        );
    }

    #[test]
    fn organization_override_shapes() {
        assert_eq!(
            err(r#"{"organizations": {"acme": {}}}"#),
            "organizations.acme: needs plan or a rate"
        );
        assert_eq!(
            err(r#"{"organizations": {"acme": {"plan": "free", "requests_per_minute": 5}}}"#),
            "organizations.acme: set either plan or a rate of its own, not both"
        );
        assert_eq!(
            err(r#"{"plans": {"free": {"requests_per_minute": 5, "plan": "free"}}}"#),
            "plans.free.plan: only allowed in organizations"
        );
    }

    #[test]
    fn unknown_fields_and_bad_headers() {
        assert!(err(r#"{"plnas": {}}"#).contains("unknown field `plnas`"));
        assert_eq!(
            err(r#"{"org_header": "x-org"}"#),
            "org_header: must be one of the identity headers api-key-auth strips and sets (x-mcp-org-id, x-mcp-key-id, x-mcp-plan, x-mcp-role, x-mcp-user-id, x-mcp-scopes): a client could send any other header itself"
        );
        assert_eq!(err(r#"{"max_buckets": 0}"#), "max_buckets: must be > 0");
        assert_eq!(
            err(r#"{"max_body_bytes": 600000}"#),
            "max_body_bytes: must be <= 524288"
        );
        assert!(err(r#"{"mode": "dry_run"}"#).starts_with("mode: unknown variant"));
    }

    #[test]
    fn global_limiter_needs_its_service() {
        assert_eq!(
            err(r#"{"limiter": "global"}"#),
            "global: required when limiter is global or local_then_global"
        );
    }
}
