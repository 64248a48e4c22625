//! pluginConfig of debate-access-log.
//!
//! ```json
//! {
//!   "max_body_bytes": 16384,
//!   "max_response_body_bytes": 16384,
//!   "debate_id_sources": [
//!     {"path_pattern": "/debates/{debate_id}"},
//!     {"header": "x-debate-id"},
//!     {"json_pointer": "/params/arguments/debate_id"}
//!   ],
//!   "session_header": "mcp-session-id",
//!   "max_value_len": 128,
//!   "sampling": {"success_rate": 0.1, "always_log_traced": false, "salt": "<mesh-wide secret>"}
//! }
//! ```
//! Every field is optional; the defaults are the values above except
//! `success_rate`, which defaults to 1 (log every request).

use serde::Deserialize;

/// Largest `max_body_bytes` accepted: the prefix lives in the Wasm heap of
/// every in-flight request.
pub const MAX_BODY_CAP: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Largest request body prefix read for MCP facts (method, tool, JSON-RPC
    /// id, debate id). 0 turns body reading off.
    pub max_body_bytes: usize,
    /// Largest part of a JSON-RPC response (JSON or SSE) read for MCP
    /// errors (`error`, tool `isError`). 0 turns response reading off.
    pub max_response_body_bytes: usize,
    /// Where the debate id comes from, tried in order; the first that yields
    /// a value wins.
    pub debate_id_sources: Vec<DebateIdSource>,
    /// Request header with the MCP session id (the response header of the
    /// same name is used when the request has none, e.g. on `initialize`).
    pub session_header: String,
    /// Longest value logged for anything a client sent (debate id, session
    /// id, method, tool, JSON-RPC id); longer values are cut.
    pub max_value_len: usize,
    pub sampling: Sampling,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            max_response_body_bytes: 16 * 1024,
            debate_id_sources: vec![
                DebateIdSource::PathPattern("/debates/{debate_id}".into()),
                DebateIdSource::Header("x-debate-id".into()),
                DebateIdSource::JsonPointer("/params/arguments/debate_id".into()),
            ],
            session_header: "mcp-session-id".into(),
            max_value_len: 128,
            sampling: Sampling::default(),
        }
    }
}

/// One place a debate id may be found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DebateIdSource {
    /// A path pattern: `/` separated segments, `*` for any one segment and
    /// exactly one `{debate_id}`; it matches the start of the path
    /// (`/debates/{debate_id}` matches `/debates/d-42/arguments`).
    PathPattern(String),
    /// A request header.
    Header(String),
    /// An RFC 6901 JSON pointer into the JSON-RPC request body (the first
    /// message of a batch that has it).
    JsonPointer(String),
}

/// Which successful requests are logged. Errors (status >= 400, no response,
/// any Envoy response flag) and denials are always logged.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Fraction of successful requests logged, 0 to 1. The decision hashes the
    /// trace id (the OpenTelemetry TraceIdRatioBased rule), so every sidecar
    /// on a trace makes the same choice; requests without one hash x-request-id.
    pub success_rate: f64,
    /// Also log every request whose trace is sampled (`traceparent` flag 01,
    /// B3 sampled). Off by default: clients set that flag.
    pub always_log_traced: bool,
    /// The mesh-wide key of the sampling hash (at least 16 characters, the
    /// same on every sidecar so that they agree). Required when
    /// `success_rate` is strictly between 0 and 1: without it a client
    /// could pick trace ids that are never logged.
    pub salt: Option<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            success_rate: 1.0,
            always_log_traced: false,
            salt: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Source;
    use mesh_core::config_error::load;

    fn err(json: &str) -> String {
        load::<Config>(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let s = load::<Config>(b"").unwrap().compile().unwrap();
        assert_eq!(s.max_body_bytes, 16384);
        assert_eq!(s.sources.len(), 3);
        assert!(matches!(&s.sources[1], Source::Header(h) if h == "x-debate-id"));
        assert!(
            matches!(&s.sources[2], Source::JsonPointer(p, 0) if p == "/params/arguments/debate_id")
        );
        assert_eq!(s.session_header, "mcp-session-id");
        assert_eq!(s.success_rate, 1.0);
        assert!(!s.always_log_traced);
    }

    #[test]
    fn full_config_parses() {
        let s = load::<Config>(
            br#"{"max_body_bytes": 0, "debate_id_sources": [{"header": "x-debate"}],
                 "session_header": "x-session", "max_value_len": 64,
                 "sampling": {"success_rate": 0.25, "always_log_traced": true, "salt": "test-salt-0123456789"}}"#,
        )
        .unwrap()
        .compile()
        .unwrap();
        assert!(!s.wants_body());
        assert!(s.watches_responses());
        assert_eq!(s.sources, vec![Source::Header("x-debate".into())]);
        assert_eq!(s.max_value_len, 64);
        assert_eq!(s.success_rate, 0.25);
        assert!(s.always_log_traced);
    }

    #[test]
    fn mistakes_name_the_field() {
        assert_eq!(
            err(r#"{"max_body_bytes": 2000000}"#),
            "max_body_bytes: must be at most 1048576"
        );
        assert!(err(r#"{"max_body_bytes": "lots"}"#).starts_with("max_body_bytes: invalid type"));
        assert_eq!(
            err(r#"{"max_response_body_bytes": 1048577}"#),
            "max_response_body_bytes: must be at most 1048576"
        );
        assert_eq!(
            err(r#"{"max_value_len": 0}"#),
            "max_value_len: must be between 1 and 256"
        );
        assert_eq!(
            err(r#"{"sampling": {"success_rate": 1.5}}"#),
            "sampling.success_rate: must be between 0 and 1"
        );
        assert!(err(r#"{"sampling": {"success_rate": 0.1}}"#)
            .starts_with("sampling.salt: required when success_rate is between 0 and 1"));
        assert_eq!(
            err(r#"{"sampling": {"success_rate": 0.1, "salt": "short"}}"#),
            "sampling.salt: must be at least 16 characters"
        );
        assert!(err(r#"{"sampling": {"rate": 1}}"#).contains("unknown field `rate`"));
        assert_eq!(
            err(r#"{"session_header": "Mcp-Session-Id"}"#),
            "session_header: must be a lowercase HTTP header name"
        );
        assert_eq!(
            err(r#"{"debate_id_sources": [{"header": "x-a"}, {"header": "authorization"}]}"#),
            "debate_id_sources[1].header: authorization carries credentials and is never logged"
        );
        assert_eq!(
            err(r#"{"debate_id_sources": [{"json_pointer": "params.debate_id"}]}"#),
            "debate_id_sources[0].json_pointer: must start with / (RFC 6901), e.g. /params/arguments/debate_id"
        );
        assert!(
            err(r#"{"debate_id_sources": [{"path_pattern": "/debates/*"}]}"#)
                .starts_with("debate_id_sources[0].path_pattern: ")
        );
        assert!(err(r#"{"debate_id_sources": [{"query": "d"}]}"#)
            .starts_with("debate_id_sources[0]: unknown variant `query`"));
        assert!(err(r#"{"surprise": 1}"#).contains("unknown field `surprise`"));
    }
}
