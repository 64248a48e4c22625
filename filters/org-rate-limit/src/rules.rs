//! Which bucket a request is charged to, with which limit, and how many tokens.
//!
//! Everything here is resolved once from the validated config ([`Rules::new`])
//! so a request only does map lookups and prefix compares.
//!
//! Shared-data keys (Envoy never deletes them, so the scheme bounds memory):
//! - `orl1|<class>|<org>`: one per organization and route class, at most
//!   `max_buckets` per class (see `store`);
//! - `orl1a|<class>|<client>`: an anonymous client's bucket (its address, see
//!   `client`), counted against `max_buckets` like organization keys;
//!   `orl1a|<class>` when `anonymous_client.from` is `none`;
//! - `orl1o|<class>|<policy>`: the overflow bucket shared by organizations
//!   beyond `max_buckets`, one per plan (or `organization` override) and class.
//!
//! Never a key per time window: refill is computed from the stored timestamp.

use crate::config::{Config, CostRule, LimitSpec, WithoutIdentity};
use mesh_core::jsonrpc::{self, RequestFacts};
use mesh_core::token_bucket::Limit;
use std::collections::BTreeMap;

/// The class of requests matching no `route_classes` entry.
pub const DEFAULT_CLASS: &str = "default";
/// Policy name (and plan label) of an organization with a rate of its own.
pub const CUSTOM_POLICY: &str = "organization";
pub const ANONYMOUS: &str = "anonymous";

/// One plan's limits per route class (index 0 is `default`).
#[derive(Debug, Clone)]
struct ResolvedPlan {
    name: String,
    by_class: Vec<Limit>,
}

#[derive(Debug, Clone)]
enum OrgOverride {
    Plan(usize),
    Custom(ResolvedPlan),
}

/// The bucket a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: String,
    /// Where the request goes when its own key cannot be created (`max_buckets`).
    pub overflow_key: String,
    pub limit: Limit,
    /// Plan name (or `organization`): the `RateLimit-Policy` name and the
    /// `plan` metric label; bounded by the config.
    pub policy: String,
    pub class: String,
    /// The organization, or None for an anonymous bucket.
    pub org: Option<String>,
    /// The key counts against `max_buckets` (organizations, anonymous
    /// clients); when the cap is reached the request goes to `overflow_key`.
    pub capped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// No (usable) organization and `without_identity: deny`.
    NoIdentity,
    Charge(Target),
}

#[derive(Debug, Clone)]
pub struct Rules {
    classes: Vec<(String, Vec<String>)>,
    plans: Vec<ResolvedPlan>,
    plan_index: BTreeMap<String, usize>,
    default_plan: usize,
    anonymous_plan: usize,
    orgs: BTreeMap<String, OrgOverride>,
    costs: Vec<CostRule>,
    default_cost: u64,
    deny_without_identity: bool,
    max_org_id_bytes: usize,
}

impl Rules {
    /// From a config that passed `validate` (anything else resolves to the
    /// safest reading: missing limits fall back to the default plan's).
    pub fn new(config: &Config) -> Self {
        let classes: Vec<(String, Vec<String>)> = config
            .route_classes
            .iter()
            .map(|c| (c.name.clone(), c.path_prefixes.clone()))
            .collect();
        let fallback = Limit::new(1, 1_000_000_000, 1);
        let resolve = |name: &str, spec: &LimitSpec| {
            let base = Config::limit_of(spec).unwrap_or(fallback);
            let mut by_class = vec![base];
            for (class, _) in &classes {
                by_class.push(
                    spec.route_classes
                        .get(class)
                        .and_then(Config::limit_of)
                        .unwrap_or(base),
                );
            }
            ResolvedPlan {
                name: name.to_string(),
                by_class,
            }
        };
        let plans: Vec<ResolvedPlan> = config
            .plans
            .iter()
            .map(|(name, spec)| resolve(name, spec))
            .collect();
        let plan_index: BTreeMap<String, usize> = config
            .plans
            .keys()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let default_plan = plan_index.get(&config.default_plan).copied().unwrap_or(0);
        let anonymous_plan = config
            .anonymous_plan
            .as_ref()
            .and_then(|p| plan_index.get(p).copied())
            .unwrap_or(default_plan);
        let orgs = config
            .organizations
            .iter()
            .map(|(org, spec)| {
                let o = match &spec.plan {
                    Some(plan) => {
                        OrgOverride::Plan(plan_index.get(plan).copied().unwrap_or(default_plan))
                    }
                    None => OrgOverride::Custom(resolve(CUSTOM_POLICY, spec)),
                };
                (org.clone(), o)
            })
            .collect();
        Self {
            classes,
            plans,
            plan_index,
            default_plan,
            anonymous_plan,
            orgs,
            costs: config.costs.clone(),
            default_cost: config.default_cost,
            deny_without_identity: config.without_identity == WithoutIdentity::Deny,
            max_org_id_bytes: config.max_org_id_bytes,
        }
    }

    /// Every policy name a request can be charged under (for metric labels).
    pub fn policies(&self) -> Vec<String> {
        let mut out: Vec<String> = self.plans.iter().map(|p| p.name.clone()).collect();
        if self
            .orgs
            .values()
            .any(|o| matches!(o, OrgOverride::Custom(_)))
        {
            out.push(CUSTOM_POLICY.to_string());
        }
        out
    }

    /// Index into `by_class` and the class name for a request path.
    fn class_of(&self, path: &str) -> (usize, &str) {
        for (i, (name, prefixes)) in self.classes.iter().enumerate() {
            if prefixes.iter().any(|p| path.starts_with(p.as_str())) {
                return (i + 1, name);
            }
        }
        (0, DEFAULT_CLASS)
    }

    /// True when `org` (the header value) is a usable identity: not empty
    /// and at most `max_org_id_bytes`.
    pub fn has_identity(&self, org: Option<&str>) -> bool {
        org.is_some_and(|o| !o.is_empty() && o.len() <= self.max_org_id_bytes)
    }

    /// The bucket for an organization (header value, if any), its plan header
    /// and the request path; `client` keys an anonymous request's bucket
    /// (see `client::client_key`; empty: one shared bucket). An empty org or
    /// one longer than `max_org_id_bytes` counts as no identity.
    pub fn classify(
        &self,
        org: Option<&str>,
        plan_header: Option<&str>,
        path: &str,
        client: &str,
    ) -> Classified {
        let (class_idx, class) = self.class_of(path);
        let org = org.filter(|o| self.has_identity(Some(o)));
        let Some(org) = org else {
            if self.deny_without_identity {
                return Classified::NoIdentity;
            }
            let plan = self.plans.get(self.anonymous_plan);
            let key = if client.is_empty() {
                format!("orl1a|{class}")
            } else {
                format!("orl1a|{class}|{client}")
            };
            let mut target = self.target(key, plan, class_idx, class, None);
            target.overflow_key = format!("orl1o|{class}|{ANONYMOUS}");
            target.capped = !client.is_empty();
            return Classified::Charge(target);
        };
        let plan = match self.orgs.get(org) {
            Some(OrgOverride::Custom(p)) => Some(p),
            Some(OrgOverride::Plan(i)) => self.plans.get(*i),
            None => {
                let idx = plan_header
                    .and_then(|p| self.plan_index.get(p))
                    .copied()
                    .unwrap_or(self.default_plan);
                self.plans.get(idx)
            }
        };
        Classified::Charge(self.target(
            format!("orl1|{class}|{org}"),
            plan,
            class_idx,
            class,
            Some(org),
        ))
    }

    fn target(
        &self,
        key: String,
        plan: Option<&ResolvedPlan>,
        class_idx: usize,
        class: &str,
        org: Option<&str>,
    ) -> Target {
        let (policy, limit) = match plan {
            Some(p) => (
                p.name.clone(),
                p.by_class
                    .get(class_idx)
                    .copied()
                    .unwrap_or(Limit::new(1, 1_000_000_000, 1)),
            ),
            None => (ANONYMOUS.to_string(), Limit::new(1, 1_000_000_000, 1)),
        };
        Target {
            overflow_key: format!("orl1o|{class}|{policy}"),
            key,
            limit,
            policy,
            class: class.to_string(),
            capped: org.is_some(),
            org: org.map(str::to_string),
        }
    }

    /// True when a cost rule looks into the body and could match this request.
    pub fn needs_body(&self, path: &str, method: &str, content_type: Option<&str>) -> bool {
        jsonrpc::is_jsonrpc_post(method, content_type)
            && self
                .costs
                .iter()
                .any(|r| r.needs_body() && matches_http(r, path, method))
    }

    /// Tokens the request costs. `body`: the JSON-RPC facts when they were
    /// read (None: not read, or not JSON-RPC). Every message of a batch pays.
    /// A message that is not settled (cut by `max_body_bytes`, or in a body
    /// that broke) could still turn out to be anything, so it pays the
    /// highest rule that could match, and so does the unseen rest of a cut
    /// batch: padding or malforming a body never makes it cheaper.
    pub fn cost(&self, path: &str, method: &str, body: Option<&RequestFacts>) -> u64 {
        let Some(facts) = body.filter(|f| !f.messages.is_empty()) else {
            return self.cost_of(path, method, None, None);
        };
        let worst = || self.max_cost(path, method);
        let mut total: u64 = 0;
        for m in &facts.messages {
            let c = if m.settled {
                self.cost_of(path, method, m.method.as_deref(), m.tool.as_deref())
            } else {
                worst()
            };
            total = total.saturating_add(c);
        }
        // A cut batch may hide more messages; the one cut mid-way already
        // paid the worst above.
        let last_settled = facts.messages.last().is_some_and(|m| m.settled);
        if !facts.is_complete() && facts.batch_len > 1 && last_settled {
            total = total.saturating_add(worst());
        }
        total
    }

    /// The most a request with this path and method can cost whatever its
    /// body says.
    pub fn max_cost(&self, path: &str, method: &str) -> u64 {
        self.possible_costs(path, method)
            .max()
            .unwrap_or(self.default_cost)
    }

    /// The least a request with this path and method can cost whatever its
    /// body says: when the bucket cannot afford even that, the request is
    /// answered before its body is read (and before the upstream sees it).
    pub fn min_cost(&self, path: &str, method: &str) -> u64 {
        self.possible_costs(path, method)
            .min()
            .unwrap_or(self.default_cost)
    }

    /// Every cost a request with this path and method could be charged: the
    /// body rules that match it, and what it pays when no body rule does.
    fn possible_costs<'a>(
        &'a self,
        path: &'a str,
        method: &'a str,
    ) -> impl Iterator<Item = u64> + 'a {
        self.costs
            .iter()
            .filter(move |r| r.needs_body() && matches_http(r, path, method))
            .map(|r| r.cost)
            .chain(std::iter::once(self.cost_of(path, method, None, None)))
    }

    fn cost_of(&self, path: &str, method: &str, mcp: Option<&str>, tool: Option<&str>) -> u64 {
        self.costs
            .iter()
            .find(|r| {
                matches_http(r, path, method)
                    && r.mcp_method.as_deref().is_none_or(|m| mcp == Some(m))
                    && r.tool
                        .as_deref()
                        .is_none_or(|t| mcp == Some("tools/call") && tool == Some(t))
            })
            .map_or(self.default_cost, |r| r.cost)
    }
}

fn matches_http(rule: &CostRule, path: &str, method: &str) -> bool {
    rule.path_prefix
        .as_deref()
        .is_none_or(|p| path.starts_with(p))
        && rule
            .http_method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    fn rules(json: &str) -> Rules {
        Rules::new(&load::<Config>(json.as_bytes()).unwrap())
    }

    const CFG: &str = r#"{
        "default_plan": "free",
        "plans": {
            "free": {"requests_per_minute": 60, "route_classes": {"llm": {"requests_per_minute": 10}}},
            "pro": {"requests_per_minute": 600}
        },
        "organizations": {"acme": {"plan": "pro"}, "bigco": {"requests_per_second": 100, "burst": 500}},
        "route_classes": [{"name": "llm", "path_prefixes": ["/v1/", "/v1beta/"]}],
        "costs": [
            {"path_prefix": "/health", "cost": 0},
            {"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5},
            {"mcp_method": "initialize", "cost": 2}
        ]
    }"#;

    fn charge(c: Classified) -> Target {
        match c {
            Classified::Charge(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plan_from_header_override_and_default() {
        let r = rules(CFG);
        let t = charge(r.classify(Some("zeta"), Some("pro"), "/mcp", ""));
        assert_eq!((t.policy.as_str(), t.limit.rate), ("pro", 600));
        assert_eq!(t.key, "orl1|default|zeta");
        // Unknown plan header: the default plan.
        let t = charge(r.classify(Some("zeta"), Some("platinum"), "/mcp", ""));
        assert_eq!(t.policy, "free");
        // Override beats the header.
        let t = charge(r.classify(Some("acme"), Some("free"), "/mcp", ""));
        assert_eq!(t.policy, "pro");
        let t = charge(r.classify(Some("bigco"), None, "/mcp", ""));
        assert_eq!((t.policy.as_str(), t.limit.burst), ("organization", 500));
    }

    #[test]
    fn route_classes_get_their_own_bucket_and_limit() {
        let r = rules(CFG);
        let t = charge(r.classify(Some("zeta"), None, "/v1/chat/completions", ""));
        assert_eq!(t.key, "orl1|llm|zeta");
        assert_eq!(t.limit.rate, 10);
        assert_eq!(t.overflow_key, "orl1o|llm|free");
        // Pro has no llm entry: its own rate, separate bucket.
        let t = charge(r.classify(Some("zeta"), Some("pro"), "/v1beta/models", ""));
        assert_eq!((t.key.as_str(), t.limit.rate), ("orl1|llm|zeta", 600));
    }

    #[test]
    fn missing_empty_or_huge_identity() {
        let r = rules(CFG);
        for org in [None, Some(""), Some(&*"x".repeat(257))] {
            let t = charge(r.classify(org, Some("pro"), "/mcp", ""));
            assert_eq!(t.key, "orl1a|default");
            assert_eq!(t.org, None);
            assert_eq!(t.policy, "free", "plan header is ignored without an org");
        }
        let deny = rules(r#"{"without_identity": "deny"}"#);
        assert_eq!(deny.classify(None, None, "/", ""), Classified::NoIdentity);
    }

    #[test]
    fn anonymous_clients_get_buckets_of_their_own() {
        let r = rules(CFG);
        let a = charge(r.classify(None, None, "/ready", "10.0.0.1"));
        let b = charge(r.classify(None, None, "/.well-known/x", "10.0.0.2"));
        assert_eq!(a.key, "orl1a|default|10.0.0.1");
        assert_eq!(b.key, "orl1a|default|10.0.0.2");
        assert!(a.capped && a.org.is_none());
        assert_eq!(a.overflow_key, "orl1o|default|anonymous");
        let shared = charge(r.classify(None, None, "/ready", ""));
        assert_eq!(shared.key, "orl1a|default");
        assert!(!shared.capped);
        assert!(charge(r.classify(Some("acme"), None, "/mcp", "10.0.0.1")).capped);
    }

    #[test]
    fn http_costs() {
        let r = rules(CFG);
        assert_eq!(r.cost("/health", "GET", None), 0);
        assert_eq!(r.cost("/mcp", "GET", None), 1);
        assert!(r.needs_body("/mcp", "POST", Some("application/json")));
        assert!(!r.needs_body("/mcp", "GET", None));
        let plain = rules(r#"{"costs": [{"http_method": "DELETE", "cost": 3}]}"#);
        assert!(!plain.needs_body("/mcp", "POST", None));
        assert_eq!(plain.cost("/x", "delete", None), 3);
    }

    fn facts(body: &str) -> RequestFacts {
        jsonrpc::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn mcp_method_and_tool_costs() {
        let r = rules(CFG);
        let call = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
            )
        };
        assert_eq!(
            r.cost("/mcp", "POST", Some(&facts(&call("run_debate_round")))),
            5
        );
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(&call("other")))), 1);
        assert_eq!(
            r.cost(
                "/mcp",
                "POST",
                Some(&facts(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#))
            ),
            2
        );
        let batch = format!(
            "[{},{},{}]",
            call("run_debate_round"),
            call("run_debate_round"),
            call("x")
        );
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(&batch))), 11);
    }

    #[test]
    fn min_cost_before_the_body_is_read() {
        let r = rules(CFG);
        assert_eq!(r.min_cost("/mcp", "POST"), 1);
        let r = rules(
            r#"{"plans": {"free": {"requests_per_minute": 60}}, "default_cost": 3,
                         "costs": [{"mcp_method": "initialize", "cost": 2}, {"tool": "x", "cost": 5}]}"#,
        );
        assert_eq!(r.min_cost("/mcp", "POST"), 2);
    }

    #[test]
    fn cut_bodies_never_get_cheaper() {
        let r = rules(CFG);
        // Tool read before the cut, but a later duplicate could replace it:
        // the worst matching rule.
        let cut = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other","arguments":{"text":"aaaa"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(cut))), 5);
        // Method hidden behind padding: the worst matching rule.
        let hidden = r#"{"jsonrpc":"2.0","id":1,"params":{"pad":"aaaaaaaa"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(hidden))), 5);
        // Tool name after the cut (padding, or arguments first).
        let late =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"t":"aaa"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(late))), 5);
        // No jsonrpc key before the padding either.
        let bare = r#"{"id":1,"params":{"pad":"aaa"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(bare))), 5);
        // A cut batch pays for what it showed plus the worst for the rest.
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"meth"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(batch))), 6);
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"},"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(batch))), 7);
    }

    #[test]
    fn bodies_serde_refuses_are_charged_by_their_tool() {
        let r = rules(CFG);
        for value in ["NaN", "Infinity", "1e400", &"9".repeat(400)] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"run_debate_round","arguments":{{"n":{value}}}}}}}"#
            );
            assert_eq!(r.cost("/mcp", "POST", Some(&facts(&body))), 5, "{value}");
        }
        let deep = format!("{}0{}", "[".repeat(200), "]".repeat(200));
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"d":{deep}}},"name":"run_debate_round"}}}}"#
        );
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(&body))), 5);
        // A broken body (the server refuses it) pays the worst too.
        let broken = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"]}"#;
        assert_eq!(r.cost("/mcp", "POST", Some(&facts(broken))), 5);
    }

    #[test]
    fn policies_for_labels() {
        assert_eq!(rules(CFG).policies(), vec!["free", "pro", "organization"]);
        assert_eq!(rules("{}").policies(), vec!["free"]);
    }
}
