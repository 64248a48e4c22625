//! pluginConfig of token-usage-metrics.
//!
//! Every field has a default, so `{}` is a working config for mcp-llm's
//! sidecar calling OpenAI, Anthropic and Gemini:
//!
//! ```json
//! {
//!   "service": "mcp-llm",
//!   "max_orgs": 100,
//!   "max_models": 50,
//!   "org_header": "x-mcp-org-id",
//!   "hosts": { "vllm.llm.svc.cluster.local": "vllm", ".openai.example.net": "openai" },
//!   "routes": [ { "path_prefix": "/internal/generate", "api": "openai_chat", "provider": "mcp-llm" } ],
//!   "max_request_body_bytes": 262144,
//!   "max_response_body_bytes": 1048576,
//!   "max_sse_event_bytes": 262144,
//!   "force_identity_encoding": true
//! }
//! ```

use mesh_core::config_error::{ConfigError, Validate};
use mesh_core::identity::{check_identity_header, header};
use mesh_core::llm_usage::Api;
use mesh_core::metrics::sanitize_label_value;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `service` label: the workload whose LLM calls are counted. Default:
    /// the Istio workload name from the proxy's node metadata, else `unknown`.
    pub service: Option<String>,
    /// Distinct organizations kept as label values before `other` (per VM).
    pub max_orgs: usize,
    /// Distinct models kept as label values before `other`, per organization
    /// label value (per VM, request and response models together). Only
    /// calls the provider accepted admit a new model.
    pub max_models: usize,
    /// Request header naming the organization (set by api-key-auth, or
    /// propagated by the calling service on its outbound calls).
    pub org_header: String,
    /// Extra upstream hosts and their `gen_ai.provider.name`, checked before
    /// the built-in ones (`api.openai.com`, `api.anthropic.com`, ...). A key
    /// starting with `.` matches every subdomain. Hosts nobody names report
    /// the provider of their API format (`openai`, `anthropic`, `gcp.gemini`).
    pub hosts: BTreeMap<String, String>,
    /// Paths that speak a provider format without the provider's path (an
    /// internal service returning OpenAI-style usage), checked first.
    pub routes: Vec<Route>,
    /// Bytes of a request body scanned for its `model` (0: never read request
    /// bodies; Gemini names the model in the path anyway).
    pub max_request_body_bytes: usize,
    /// Largest non-streamed (JSON) response read for usage; larger bodies pass
    /// untouched and count as `usage_missing` / `too_large`.
    pub max_response_body_bytes: usize,
    /// Largest single SSE event kept while it is assembled; a larger event is
    /// skipped (the stream itself always passes untouched).
    pub max_sse_event_bytes: usize,
    /// Ask providers for uncompressed responses (`accept-encoding: identity`)
    /// so usage can be read; compressed bodies cannot be.
    pub force_identity_encoding: bool,
    /// LLM token budgets per plan, organization and key (see
    /// `budget_config`); absent: none. Calls without an organization pass.
    pub budgets: Option<crate::budget_config::Budgets>,
}

/// A path prefix with a known API format.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub path_prefix: String,
    pub api: ApiName,
    /// `gen_ai.provider.name` for these calls; default: by host, then by API.
    #[serde(default)]
    pub provider: Option<String>,
}

/// API formats as spelled in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiName {
    OpenaiChat,
    OpenaiResponses,
    AnthropicMessages,
    Gemini,
}

impl ApiName {
    pub fn api(self) -> Api {
        match self {
            ApiName::OpenaiChat => Api::OpenAiChat,
            ApiName::OpenaiResponses => Api::OpenAiResponses,
            ApiName::AnthropicMessages => Api::AnthropicMessages,
            ApiName::Gemini => Api::Gemini,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service: None,
            max_orgs: 100,
            max_models: 50,
            org_header: header::ORG_ID.to_string(),
            hosts: BTreeMap::new(),
            routes: Vec::new(),
            max_request_body_bytes: 256 * 1024,
            max_response_body_bytes: 1024 * 1024,
            max_sse_event_bytes: 256 * 1024,
            force_identity_encoding: true,
            budgets: None,
        }
    }
}

/// Upper bound for the byte caps: a filter never holds more per request.
const MAX_BYTES_CAP: usize = 16 * 1024 * 1024;
const MIN_EVENT_BYTES: usize = 1024;

fn label_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if sanitize_label_value(value) != value {
        return Err(ConfigError::new(
            field,
            format!("`{value}` must be at most 64 of [A-Za-z0-9_.:/@-] (it is a metric label)"),
        ));
    }
    Ok(())
}

fn byte_cap(field: &str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min || value > MAX_BYTES_CAP {
        return Err(ConfigError::new(
            field,
            format!("must be between {min} and {MAX_BYTES_CAP} bytes"),
        ));
    }
    Ok(())
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_orgs == 0 {
            return Err(ConfigError::new("max_orgs", "must be > 0"));
        }
        if self.max_models == 0 {
            return Err(ConfigError::new("max_models", "must be > 0"));
        }
        if let Some(service) = &self.service {
            label_value("service", service)?;
        }
        check_identity_header("org_header", &self.org_header)?;
        for (host, provider) in &self.hosts {
            let field = format!("hosts.{host}");
            let bare = host.strip_prefix('.').unwrap_or(host);
            if bare.is_empty()
                || host.to_ascii_lowercase() != *host
                || host.contains([':', '/', '*', ' '])
            {
                return Err(ConfigError::new(
                    field,
                    "must be a lower-case host name without port (or `.suffix`)",
                ));
            }
            label_value(&field, provider)?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            if !route.path_prefix.starts_with('/') {
                return Err(ConfigError::new(
                    format!("routes[{i}].path_prefix"),
                    "must start with `/`",
                ));
            }
            if let Some(provider) = &route.provider {
                label_value(&format!("routes[{i}].provider"), provider)?;
            }
        }
        if self.max_request_body_bytes > MAX_BYTES_CAP {
            return Err(ConfigError::new(
                "max_request_body_bytes",
                format!("must be at most {MAX_BYTES_CAP} bytes"),
            ));
        }
        byte_cap(
            "max_response_body_bytes",
            self.max_response_body_bytes,
            MIN_EVENT_BYTES,
        )?;
        byte_cap(
            "max_sse_event_bytes",
            self.max_sse_event_bytes,
            MIN_EVENT_BYTES,
        )?;
        if let Some(b) = &self.budgets {
            b.validate_in("budgets")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    #[test]
    fn empty_config_is_a_working_default() {
        let c: Config = load(b"").unwrap();
        assert_eq!(c.max_orgs, 100);
        assert_eq!(c.org_header, "x-mcp-org-id");
        assert!(c.force_identity_encoding);
    }

    #[test]
    fn full_config_parses() {
        let c: Config = load(
            br#"{"service":"mcp-llm","max_orgs":5,"max_models":3,"org_header":"x-mcp-key-id",
                "hosts":{"vllm.internal":"vllm",".example.net":"openai"},
                "routes":[{"path_prefix":"/gen","api":"openai_responses","provider":"mcp-llm"},
                          {"path_prefix":"/g","api":"gemini"}],
                "max_request_body_bytes":0,"max_response_body_bytes":4096,
                "max_sse_event_bytes":2048,"force_identity_encoding":false}"#,
        )
        .unwrap();
        assert_eq!(c.routes[0].api.api(), Api::OpenAiResponses);
        assert_eq!(c.routes[1].provider, None);
        assert_eq!(c.hosts["vllm.internal"], "vllm");
    }

    #[test]
    fn every_mistake_names_its_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"max_orgs":0}"#, "max_orgs: must be > 0"),
            (r#"{"max_models":0}"#, "max_models: must be > 0"),
            (r#"{"max_orgs":-1}"#, "max_orgs: invalid value"),
            (r#"{"sevrice":"x"}"#, "sevrice: unknown field `sevrice`"),
            (
                r#"{"service":"mcp llm"}"#,
                "service: `mcp llm` must be at most 64",
            ),
            (r#"{"service":""}"#, "service: must not be empty"),
            (
                r#"{"org_header":"X-Org"}"#,
                "org_header: must be one of the identity headers",
            ),
            (
                r#"{"org_header":":path"}"#,
                "org_header: must be one of the identity headers",
            ),
            (
                r#"{"hosts":{"api.x.com:443":"x"}}"#,
                "hosts.api.x.com:443: must be a lower-case host",
            ),
            (
                r#"{"hosts":{".":"x"}}"#,
                "hosts..: must be a lower-case host",
            ),
            (
                r#"{"hosts":{"a.com":"bad;label"}}"#,
                "hosts.a.com: `bad;label`",
            ),
            (
                r#"{"routes":[{"path_prefix":"gen","api":"gemini"}]}"#,
                "routes[0].path_prefix: must start with `/`",
            ),
            (
                r#"{"routes":[{"path_prefix":"/g","api":"cohere"}]}"#,
                "routes[0].api: unknown variant `cohere`",
            ),
            (
                r#"{"routes":[{"path_prefix":"/g","api":"gemini","provider":""}]}"#,
                "routes[0].provider: must not be empty",
            ),
            (
                r#"{"max_response_body_bytes":10}"#,
                "max_response_body_bytes: must be between 1024",
            ),
            (
                r#"{"max_sse_event_bytes":999999999}"#,
                "max_sse_event_bytes: must be between",
            ),
            (
                r#"{"max_request_body_bytes":999999999}"#,
                "max_request_body_bytes: must be at most",
            ),
        ];
        for (json, want) in cases {
            let err = load::<Config>(json.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{json}: got `{err}`, want `{want}`");
        }
    }
}
