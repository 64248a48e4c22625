//! mcp-mesh: the five filters in one Proxy-Wasm module. Each enabled stage
//! runs in phase order (auth, MCP guard, rate limit, access log, token
//! usage) in one
//! HTTP context: the request headers are read once, the identity auth
//! verified reaches the rate limiter in the module's own header snapshot,
//! body facts pass in memory, and Envoy pays for one Wasm filter instead of
//! four.
//!
//! Its pluginConfig has one section per stage, each exactly the standalone
//! filter's pluginConfig; a missing section leaves that stage out.
//!
//! ```json
//! {"api_key_auth": {...}, "mcp_guard": {...}, "org_rate_limit": {...},
//!  "debate_access_log": {...}, "token_usage_metrics": {...}}
//! ```

use mesh_core::config_error::{self, ConfigError, Validate};
use mesh_core::stage::{Host, Stage};
use serde::Deserialize;
use std::rc::Rc;

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity: API keys and JWT API tokens (the api-key-auth pluginConfig).
    pub api_key_auth: Option<api_key_auth::config::Config>,
    /// MCP header check, tool-level authorization, list filtering (the
    /// mcp-guard pluginConfig).
    pub mcp_guard: Option<mcp_guard::config::Config>,
    /// Per-organization limits (the org-rate-limit pluginConfig).
    pub org_rate_limit: Option<org_rate_limit::config::Config>,
    /// The MCP access-log facts (the debate-access-log pluginConfig).
    pub debate_access_log: Option<debate_access_log::config::Config>,
    /// LLM token usage (the token-usage-metrics pluginConfig).
    pub token_usage_metrics: Option<token_usage_metrics::config::Config>,
}

/// The section names, in phase order.
pub const SECTIONS: [&str; 5] = [
    "api_key_auth",
    "mcp_guard",
    "org_rate_limit",
    "debate_access_log",
    "token_usage_metrics",
];

/// Names an error inside a section by its full path
/// (`api_key_auth.keys[1].hash`).
fn within(section: &str) -> impl Fn(ConfigError) -> ConfigError + '_ {
    move |err| {
        let field = if err.field == "<root>" {
            section.to_string()
        } else {
            format!("{section}.{}", err.field)
        };
        ConfigError::new(field, err.reason)
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let sections: [(&str, Option<&dyn Validate>); 5] = [
            (
                SECTIONS[0],
                self.api_key_auth.as_ref().map(|c| c as &dyn Validate),
            ),
            (
                SECTIONS[1],
                self.mcp_guard.as_ref().map(|c| c as &dyn Validate),
            ),
            (
                SECTIONS[2],
                self.org_rate_limit.as_ref().map(|c| c as &dyn Validate),
            ),
            (
                SECTIONS[3],
                self.debate_access_log.as_ref().map(|c| c as &dyn Validate),
            ),
            (
                SECTIONS[4],
                self.token_usage_metrics
                    .as_ref()
                    .map(|c| c as &dyn Validate),
            ),
        ];
        if sections.iter().all(|(_, c)| c.is_none()) {
            return Err(ConfigError::new(
                "<root>",
                format!("enable at least one stage: {}", SECTIONS.join(", ")),
            ));
        }
        for (name, config) in sections {
            if let Some(config) = config {
                config.validate().map_err(within(name))?;
            }
        }
        Ok(())
    }
}

/// The module's stages from its pluginConfig, in phase order.
pub fn build(bytes: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(bytes)?;
    let mut stages: Vec<Rc<dyn Stage>> = Vec::with_capacity(SECTIONS.len());
    if let Some(c) = &config.api_key_auth {
        let stage = api_key_auth::stage::compile(c, host).map_err(within(SECTIONS[0]))?;
        stages.push(Rc::new(stage));
    }
    if let Some(c) = config.mcp_guard {
        stages.push(Rc::new(mcp_guard::stage::compile(c, host)));
    }
    if let Some(c) = config.org_rate_limit {
        stages.push(Rc::new(org_rate_limit::stage::compile(c, host)));
    }
    if let Some(c) = &config.debate_access_log {
        let stage = debate_access_log::stage::compile(c, host).map_err(within(SECTIONS[3]))?;
        stages.push(Rc::new(stage));
    }
    if let Some(c) = config.token_usage_metrics {
        stages.push(Rc::new(token_usage_metrics::stage::compile(c, host)));
    }
    Ok(stages)
}

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod filter {
    proxy_wasm::main! {{
        mesh_host::glue::install(crate::build);
    }}
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::mock_host::MockHost;

    fn error(json: &str) -> String {
        match build(json.as_bytes(), &MockHost::default()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_section_and_the_field() {
        assert_eq!(
            error(r#"{"api_key_auth": {"keys": [{"id": "k", "org_id": "o", "hash": "zz"}]}}"#)
                .split(':')
                .next(),
            Some("api_key_auth.keys[0].hash")
        );
        assert!(error(r#"{"org_rate_limit": {"no_such_field": 1}}"#)
            .starts_with("org_rate_limit.no_such_field"));
        assert!(error(r#"{"rate_limit": {}}"#).contains("unknown field `rate_limit`"));
        assert_eq!(
            error("{}"),
            "<root>: enable at least one stage: api_key_auth, mcp_guard, org_rate_limit, debate_access_log, token_usage_metrics"
        );
    }

    #[test]
    fn stages_come_in_phase_order_and_only_when_enabled() {
        let host = MockHost::default();
        let two = build(
            br#"{"token_usage_metrics": {}, "debate_access_log": {}}"#,
            &host,
        );
        assert_eq!(two.map(|s| s.len()).ok(), Some(2));
    }

    /// A 2026-07-28 call is priced on its headers: the second call of a tool
    /// that costs 5 from a burst of 6 is refused before any body is sent.
    #[test]
    fn a_modern_call_is_charged_at_header_time() {
        let mut host = MockHost::with_headers(&[
            (":method", "POST"),
            (":path", "/mcp"),
            ("content-type", "application/json"),
            ("x-mcp-org-id", "acme"),
            ("x-mcp-plan", "free"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "run_debate_round"),
        ]);
        host.now_ns = 1_700_000_000_000_000_000;
        let config = br#"{"mcp_guard": {}, "org_rate_limit": {
            "default_plan": "free",
            "plans": {"free": {"requests_per_minute": 60, "burst": 6}},
            "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}]}}"#;
        let stages = build(config, &host).unwrap_or_default();
        assert_eq!(stages.len(), 2);
        let mut first = mesh_core::chain::Chain::new(&stages);
        assert!(
            first.request_headers(&mut host, false),
            "allowed, body to come"
        );
        let mut second = mesh_core::chain::Chain::new(&stages);
        assert!(!second.request_headers(&mut host, false));
        assert_eq!(host.replies.last().map(|r| r.status), Some(429));
        // Without the guard the same headers are not trusted: the limiter
        // waits for the body.
        let rl_only = br#"{"org_rate_limit": {
            "default_plan": "free",
            "plans": {"free": {"requests_per_minute": 60, "burst": 6}},
            "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}]}}"#;
        let stages = build(rl_only, &host).unwrap_or_default();
        let mut third = mesh_core::chain::Chain::new(&stages);
        let replies = host.replies.len();
        assert!(third.request_headers(&mut host, false));
        assert_eq!(host.replies.len(), replies);
    }
}
