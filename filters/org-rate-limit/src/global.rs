//! Global mode: one limit across every replica, through Envoy's rate-limit
//! service protocol (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`,
//! served by envoyproxy/ratelimit and Kuadrant Limitador, both on Redis).
//!
//! ```json
//! "global": {
//!   "cluster": "ratelimit",
//!   "domain": "mcp",
//!   "timeout_ms": 20,
//!   "descriptors": [
//!     [{"key": "plan", "from": "plan"}, {"key": "org_id", "from": "org"}],
//!     [{"key": "org_id", "from": "org"}, {"key": "tool", "from": "tool"}]
//!   ]
//! }
//! ```
//!
//! As with Envoy's ratelimit filter, a descriptor one of whose entries has no
//! value for this request (no tool outside `tools/call`) is not sent; a request
//! with no descriptor left is not limited globally. `hits_addend` is the
//! request's cost.

use crate::config::{GlobalConfig, Source};
use crate::rules::{Target, ANONYMOUS};
use mesh_core::jsonrpc::RequestFacts;

impl Source {
    fn needs_body(self) -> bool {
        matches!(self, Source::McpMethod | Source::Tool)
    }
}

/// What the descriptors can be built from, for one request.
pub struct Facts<'a> {
    pub target: &'a Target,
    pub http_method: &'a str,
    pub body: Option<&'a RequestFacts>,
}

impl GlobalConfig {
    /// True when a descriptor needs the JSON-RPC body.
    pub fn needs_body(&self) -> bool {
        self.descriptors
            .iter()
            .flatten()
            .any(|e| e.from.is_some_and(Source::needs_body))
    }

    /// The descriptors for one request; those with a missing value are left out.
    pub fn descriptors(&self, facts: &Facts<'_>) -> Vec<mesh_core::rls::Descriptor> {
        self.descriptors
            .iter()
            .filter_map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let value = match (&e.value, e.from) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(source)) => value_of(source, facts),
                            (None, None) => None,
                        };
                        value.map(|v| (e.key.clone(), v))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect()
    }
}

fn value_of(source: Source, facts: &Facts<'_>) -> Option<String> {
    match source {
        Source::Org => Some(
            facts
                .target
                .org
                .clone()
                .unwrap_or_else(|| ANONYMOUS.to_string()),
        ),
        Source::Plan => Some(facts.target.policy.clone()),
        Source::RouteClass => Some(facts.target.class.clone()),
        Source::HttpMethod => Some(facts.http_method.to_string()).filter(|m| !m.is_empty()),
        Source::McpMethod => facts.body.and_then(|b| b.method.clone()),
        Source::Tool => facts.body.and_then(|b| b.tool.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use mesh_core::config_error::load;
    use mesh_core::token_bucket::Limit;

    fn global(json: &str) -> Result<GlobalConfig, String> {
        let cfg = format!(r#"{{"limiter": "global", "global": {json}}}"#);
        load::<Config>(cfg.as_bytes())
            .map(|c| c.global.unwrap())
            .map_err(|e| e.to_string())
    }

    fn target(org: Option<&str>) -> Target {
        Target {
            key: String::new(),
            overflow_key: String::new(),
            limit: Limit::new(1, 1, 1),
            policy: "free".into(),
            class: "default".into(),
            capped: org.is_some(),
            org: org.map(str::to_string),
        }
    }

    #[test]
    fn defaults() {
        let g = global(r#"{"cluster": "ratelimit"}"#).unwrap();
        assert_eq!((g.domain.as_str(), g.timeout_ms), ("mcp", 20));
        assert!(!g.needs_body());
        let t = target(Some("acme"));
        let facts = Facts {
            target: &t,
            http_method: "GET",
            body: None,
        };
        assert_eq!(
            g.descriptors(&facts),
            vec![vec![
                ("plan".to_string(), "free".to_string()),
                ("org_id".to_string(), "acme".to_string())
            ]]
        );
        let anon = target(None);
        let facts = Facts {
            target: &anon,
            ..facts
        };
        assert_eq!(g.descriptors(&facts)[0][1].1, "anonymous");
    }

    #[test]
    fn descriptors_without_a_value_are_left_out() {
        let g = global(
            r#"{"cluster": "rl", "descriptors": [
                [{"key": "org_id", "from": "org"}, {"key": "tool", "from": "tool"}],
                [{"key": "generic", "value": "all"}, {"key": "m", "from": "http_method"}]
            ]}"#,
        )
        .unwrap();
        assert!(g.needs_body());
        let t = target(Some("acme"));
        let body = mesh_core::jsonrpc::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_debate_round"}}"#,
        )
        .unwrap();
        let with = Facts {
            target: &t,
            http_method: "POST",
            body: Some(&body),
        };
        assert_eq!(g.descriptors(&with).len(), 2);
        assert_eq!(g.descriptors(&with)[0][1].1, "run_debate_round");
        let without = Facts { body: None, ..with };
        let d = g.descriptors(&without);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0][0], ("generic".to_string(), "all".to_string()));
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            global(r#"{"cluster": ""}"#).unwrap_err(),
            "global.cluster: must not be empty"
        );
        assert_eq!(
            global(r#"{"cluster": "rl", "timeout_ms": 0}"#).unwrap_err(),
            "global.timeout_ms: must be 1..=60000"
        );
        assert_eq!(
            global(r#"{"cluster": "rl", "descriptors": [[{"key": "k"}]]}"#).unwrap_err(),
            "global.descriptors[0][0]: set exactly one of from and value"
        );
        assert_eq!(
            global(r#"{"cluster": "rl", "descriptors": [[]]}"#).unwrap_err(),
            "global.descriptors[0]: needs at least one entry"
        );
        assert!(
            global(r#"{"cluster": "rl", "descriptors": [[{"key": "k", "from": "weather"}]]}"#)
                .unwrap_err()
                .starts_with("global.descriptors[0][0].from: unknown variant")
        );
    }
}
