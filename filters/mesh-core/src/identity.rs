//! The identity contract between filters.
//!
//! api-key-auth removes every client-sent copy of these headers and then sets
//! them from the verified credential; later filters and the service trust them
//! only because of that. The same values are written to filter state under the
//! `mcp_*` keys so access logs never need to trust headers.

/// Request headers carrying the verified identity.
pub mod header {
    pub const ORG_ID: &str = "x-mcp-org-id";
    pub const KEY_ID: &str = "x-mcp-key-id";
    pub const PLAN: &str = "x-mcp-plan";
    pub const ROLE: &str = "x-mcp-role";
    pub const USER_ID: &str = "x-mcp-user-id";
    /// The JWT's scopes, space-separated (RFC 8693 `scope` form).
    pub const SCOPES: &str = "x-mcp-scopes";

    /// The signed identity assertion the gateway mints and the services
    /// forward (not an identity header: it is verified, never trusted).
    pub const ASSERTION: &str = "x-mcp-identity";

    /// Every identity header, in the order api-key-auth writes them.
    pub const ALL: [&str; 6] = [ORG_ID, KEY_ID, PLAN, ROLE, USER_ID, SCOPES];

    /// True when a server could read `name` as one of [`ALL`] although it is
    /// not spelled so: CGI, WSGI and several frameworks map `_` to `-` and
    /// ignore case (`x_mcp_org_id`, `X_MCP_PLAN`, `x-mcp_role`). Such a
    /// header must never reach the service.
    pub fn reads_as_identity(name: &str) -> bool {
        ALL.iter().any(|h| {
            h.len() == name.len()
                && *h != name
                && h.bytes().zip(name.bytes()).all(|(want, got)| {
                    want == got.to_ascii_lowercase() || (want == b'-' && got == b'_')
                })
        })
    }
}

/// Checks a configured name of a header that identity is read from (a
/// filter's `org_header`, `plan_header`): only the identity headers are
/// stripped of every client copy and set by api-key-auth, so any other name
/// would let a client choose its own organization or plan.
pub fn check_identity_header(
    field: &str,
    name: &str,
) -> Result<(), crate::config_error::ConfigError> {
    if header::ALL.contains(&name) {
        return Ok(());
    }
    Err(crate::config_error::ConfigError::new(
        field,
        format!(
            "must be one of the identity headers api-key-auth strips and sets ({}): \
             a client could send any other header itself",
            header::ALL.join(", ")
        ),
    ))
}

/// Filter-state keys (`set_property(["<key>"], value)`), readable in an Envoy
/// access log as `%FILTER_STATE(wasm.<key>:PLAIN)%`.
pub mod state {
    pub const ORG_ID: &str = "mcp_org_id";
    pub const KEY_ID: &str = "mcp_key_id";
    pub const PLAN: &str = "mcp_plan";
    pub const ROLE: &str = "mcp_role";
    pub const USER_ID: &str = "mcp_user_id";
    pub const SCOPES: &str = "mcp_scopes";
    pub const AUTH_RESULT: &str = "mcp_auth_result";
    pub const AUTH_REASON: &str = "mcp_auth_reason";
    pub const RATELIMIT_RESULT: &str = "mcp_ratelimit_result";
    pub const RATELIMIT_REMAINING: &str = "mcp_ratelimit_remaining";
    pub const DEBATE_ID: &str = "mcp_debate_id";
    pub const METHOD: &str = "mcp_method";
    pub const TOOL: &str = "mcp_tool";
    pub const JSONRPC_ID: &str = "mcp_jsonrpc_id";
    pub const SESSION_ID: &str = "mcp_session_id";
    /// Number of JSON-RPC messages when the body is a batch.
    pub const BATCH_SIZE: &str = "mcp_batch_size";
    /// What the JSON-RPC response said went wrong: the error code
    /// (`-32602`), `error` (no code) or `tool_error` (`result.isError`).
    pub const JSONRPC_ERROR: &str = "mcp_jsonrpc_error";
    /// "1" when the MCP facts come from a body cut at debate-access-log's cap.
    pub const BODY_TRUNCATED: &str = "mcp_body_truncated";
    /// W3C trace id (32 hex) and the caller's span id (16 hex), from
    /// `traceparent` or B3.
    pub const TRACE_ID: &str = "mcp_trace_id";
    pub const SPAN_ID: &str = "mcp_span_id";
    /// debate-access-log's verdict, written only as "0": sampled out.
    pub const LOG_SAMPLED: &str = "mcp_log_sampled";
    /// The rate a logged line was sampled at ("1" for errors and denials).
    pub const LOG_SAMPLE_RATE: &str = "mcp_log_sample_rate";
    pub const TOKENS_INPUT: &str = "mcp_tokens_input";
    pub const TOKENS_OUTPUT: &str = "mcp_tokens_output";
    pub const LLM_PROVIDER: &str = "mcp_llm_provider";
    pub const LLM_MODEL: &str = "mcp_llm_model";
    /// token-usage-metrics: `ok`, `error` or `usage_missing`.
    pub const LLM_OUTCOME: &str = "mcp_llm_outcome";
    /// token-usage-metrics: the part of `mcp_tokens_input` read from a cache.
    pub const TOKENS_CACHED_INPUT: &str = "mcp_tokens_cached_input";
    /// token-usage-metrics: the part of `mcp_tokens_output` spent reasoning.
    pub const TOKENS_REASONING: &str = "mcp_tokens_reasoning";
    /// mcp-guard: the MCP protocol version (header, envelope or `initialize`).
    pub const PROTOCOL_VERSION: &str = "mcp_protocol_version";
    /// mcp-guard: `clientInfo` name and version.
    pub const CLIENT_NAME: &str = "mcp_client_name";
    pub const CLIENT_VERSION: &str = "mcp_client_version";
    /// mcp-guard: the tool or prompt name, or the resource URI without its query.
    pub const NAME: &str = "mcp_name";
    /// mcp-guard: `allowed` or `denied`, and the rule that decided
    /// (its name, `rules[<i>]`, or `default`).
    pub const AUTHZ_RESULT: &str = "mcp_authz_result";
    pub const AUTHZ_RULE: &str = "mcp_authz_rule";
    /// mcp-guard: how a 2026-07-28 request's headers were held to its body:
    /// `enforced` (from the request headers on: later filters may act on
    /// them), `ok`, or `mismatch:<field>`.
    pub const HEADER_CHECK: &str = "mcp_header_check";
}

/// A verified identity, as api-key-auth hands it on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub org_id: String,
    pub key_id: String,
    pub plan: String,
    pub role: String,
    pub user_id: Option<String>,
    /// Scopes a JWT API token grants, space-separated; `None` for API keys.
    pub scopes: Option<String>,
}

impl Identity {
    /// (header name, filter-state key, value) for every field that is set.
    pub fn fields(&self) -> Vec<(&'static str, &'static str, &str)> {
        let mut out = vec![
            (header::ORG_ID, state::ORG_ID, self.org_id.as_str()),
            (header::KEY_ID, state::KEY_ID, self.key_id.as_str()),
            (header::PLAN, state::PLAN, self.plan.as_str()),
            (header::ROLE, state::ROLE, self.role.as_str()),
        ];
        if let Some(user) = &self.user_id {
            out.push((header::USER_ID, state::USER_ID, user.as_str()));
        }
        if let Some(scopes) = &self.scopes {
            out.push((header::SCOPES, state::SCOPES, scopes.as_str()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_a_server_could_read_as_identity() {
        for name in [
            "x_mcp_org_id",
            "X_MCP_PLAN",
            "x-mcp_role",
            "x_mcp-key-id",
            "X-Mcp-User_Id",
        ] {
            assert!(header::reads_as_identity(name), "{name}");
        }
        for name in [
            "x-mcp-org-id",
            "x-mcp-org",
            "x_mcp_org_idx",
            "x.mcp.org.id",
            "mcp_org_id",
        ] {
            assert!(!header::reads_as_identity(name), "{name}");
        }
    }

    #[test]
    fn fields_skip_missing_user() {
        let id = Identity {
            org_id: "acme".into(),
            key_id: "k1".into(),
            plan: "pro".into(),
            role: "user".into(),
            user_id: None,
            scopes: None,
        };
        let names: Vec<_> = id.fields().iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            vec![header::ORG_ID, header::KEY_ID, header::PLAN, header::ROLE]
        );
        let with_user = Identity {
            user_id: Some("u7".into()),
            ..id
        };
        assert_eq!(
            with_user.fields().last().unwrap(),
            &(header::USER_ID, state::USER_ID, "u7")
        );
    }
}
