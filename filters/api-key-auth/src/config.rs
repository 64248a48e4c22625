//! pluginConfig of api-key-auth.
//!
//! Field names follow Envoy's own filters where one exists, so the config reads
//! familiar: `key_sources` (api_key_auth), `providers` / `issuer` /
//! `audiences` / `local_jwks` / `clock_skew_seconds` (jwt_authn).
//!
//! ```json
//! {
//!   "key_sources": [{"header": "x-api-key"}, {"header": "authorization", "value_prefix": "Bearer "}],
//!   "keys": [{"id": "acme-1", "sha256": "<64 hex>", "org_id": "acme", "plan": "pro", "role": "owner"}],
//!   "jwt_providers": [{"name": "idp", "issuer": "https://idp.example", "local_jwks": {"keys": [...]}}],
//!   "skip_paths": [{"exact": "/healthz"}],
//!   "rules": [{"prefix": "/admin/", "allowed_roles": ["owner"]}]
//! }
//! ```
//!
//! `validate` checks every field and then compiles the whole policy (key
//! index, JWKS keys), so anything that would fail at request time fails here,
//! naming the field.

use mesh_core::config_error::{ConfigError, Validate};
use mesh_core::identity::header as identity_header;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where credentials are looked for. All present ones must agree (else 401
    /// `conflicting_credentials`).
    pub key_sources: Vec<KeySource>,
    /// API keys, stored as SHA-256 hashes. Several per organization for rotation.
    pub keys: Vec<KeyEntry>,
    /// Issuers of signed JWT API tokens. A credential containing a `.` is a JWT.
    pub jwt_providers: Vec<JwtProvider>,
    /// Forward the credential to the upstream (default: stripped).
    pub forward_credential: bool,
    /// Requests on these paths skip authentication (health checks). Identity
    /// headers are still removed from them.
    pub skip_paths: Vec<PathMatch>,
    /// Per-route authorization; the first rule matching path and method decides.
    pub rules: Vec<RouteRule>,
    /// `realm` of the `WWW-Authenticate` challenge.
    pub realm: String,
    /// Longer credentials are rejected as malformed before any parsing.
    pub max_credential_bytes: usize,
    /// Leeway for JWT `exp` / `nbf`.
    pub clock_skew_seconds: u64,
    /// Verified JWTs remembered per VM (by SHA-256), so a reused token skips
    /// the signature check; 0 disables (Envoy jwt_authn: `jwt_cache_size`).
    pub jwt_cache_size: usize,
    /// At the edge: mint a signed assertion of every verified identity for
    /// the sidecars behind this one (`assertion.rs`). Unset: none.
    pub identity_assertion: Option<IdentityAssertion>,
    /// Behind the edge: a request that brings no credential at all goes on
    /// without identity (every identity header stripped; counted as
    /// `skipped`/`anonymous`) instead of 401. A bad credential is still 401.
    pub anonymous: bool,
}

/// The identity assertion this filter mints (ES256 JWT).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct IdentityAssertion {
    /// The request header it travels in; the services forward it.
    pub header: String,
    /// `iss` and `aud`, as the verifiers' `jwt_providers` entry expects.
    pub issuer: String,
    pub audience: String,
    /// `kid`: several verification keys may be valid at once (rotation).
    pub key_id: String,
    /// The P-256 private key as a JWK (`kty` EC, `crv` P-256, `d`, and `x`,
    /// `y`, checked against `d`). A secret: never logged.
    #[cfg_attr(feature = "schema", schemars(with = "serde_json::Map<String, Value>"))]
    pub private_key: Value,
    /// Lifetime; a verifier refuses it after (and its clock skew).
    pub ttl_seconds: u64,
}

impl Default for IdentityAssertion {
    fn default() -> Self {
        Self {
            header: identity_header::ASSERTION.into(),
            issuer: "mcp-gateway".into(),
            audience: "mcp-mesh".into(),
            key_id: String::new(),
            private_key: Value::Null,
            ttl_seconds: 60,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            key_sources: vec![
                KeySource::header("x-api-key"),
                KeySource {
                    value_prefix: Some("Bearer ".into()),
                    ..KeySource::header("authorization")
                },
            ],
            keys: Vec::new(),
            jwt_providers: Vec::new(),
            forward_credential: false,
            skip_paths: Vec::new(),
            rules: Vec::new(),
            realm: "mcp".into(),
            max_credential_bytes: 4096,
            clock_skew_seconds: 60,
            jwt_cache_size: 1024,
            identity_assertion: None,
            anonymous: false,
        }
    }
}

/// One place a credential may be: a request header (optionally after a
/// scheme prefix such as `Bearer `, matched case-insensitively) or a query
/// parameter. Exactly one of `header` / `query`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub value_prefix: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

impl KeySource {
    pub fn header(name: &str) -> Self {
        Self {
            header: Some(name.into()),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Public key id, sent upstream as `x-mcp-key-id` (never the key).
    pub id: String,
    /// SHA-256 of the key, 64 hex digits (`make api-key` prints it).
    pub sha256: String,
    pub org_id: String,
    pub plan: String,
    pub role: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// RFC 3339; the key is refused before this instant.
    #[serde(default)]
    pub not_before: Option<String>,
    /// RFC 3339; the key is refused from this instant on.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    /// Short name, used as the key id when the token has no `jti`-like claim.
    pub name: String,
    /// Exact `iss` claim of this provider's tokens.
    pub issuer: String,
    /// If set, the token's `aud` must contain one of them.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A JWKS (`{"keys": [...]}`): `oct` keys for HS256, `RSA` for RS256,
    /// `EC` P-256 for ES256. A key's `alg`, when given, is the only one accepted.
    #[cfg_attr(feature = "schema", schemars(with = "serde_json::Map<String, Value>"))]
    pub local_jwks: Value,
    /// Which claims carry the identity.
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Used when the plan claim is absent.
    #[serde(default)]
    pub default_plan: Option<String>,
    /// Used when the role claim is absent.
    #[serde(default)]
    pub default_role: Option<String>,
    /// Refuse tokens without `exp` (default true; `require_expiration` is
    /// the older name of this field).
    #[serde(default = "yes", alias = "require_expiration")]
    pub require_exp: bool,
    /// Longest validity a token may claim, in seconds: `exp` at most this far
    /// after `iat` and after now. 0 means no limit. Default 86400 (a day): a
    /// token with a far-future `exp` is a long-lived credential in disguise.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_seconds: u64,
}

fn yes() -> bool {
    true
}

fn default_max_lifetime() -> u64 {
    86_400
}

/// Claim names (a `.` walks into nested objects: `org.id`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub org_id: String,
    pub plan: String,
    pub role: String,
    pub user_id: String,
    pub key_id: String,
    /// The claim with the token's scopes (a space-separated string or an
    /// array of strings), forwarded in `x-mcp-scopes` for mcp-guard's rules.
    /// Any claim of that shape will do (`groups`, `scp`).
    pub scope: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            org_id: "org_id".into(),
            plan: "plan".into(),
            role: "role".into(),
            user_id: "sub".into(),
            key_id: "jti".into(),
            scope: "scope".into(),
        }
    }
}

/// Exactly one of `exact` / `prefix`, matched against the path without query.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
}

/// Requests whose path starts with `prefix` (and whose method is in `methods`,
/// if given) are allowed only for the listed roles and organizations (each
/// list that is given must contain the caller's value); else 403.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
}

/// Identity values travel as request headers and label values: short, and
/// only characters that need no quoting anywhere.
pub const MAX_IDENTITY_LEN: usize = 128;

pub fn is_identity_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_IDENTITY_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:@/+|".contains(&b))
}

fn check_identity(field: String, value: &str) -> Result<(), ConfigError> {
    if is_identity_value(value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be 1-{MAX_IDENTITY_LEN} characters of A-Z a-z 0-9 . _ - : @ / + |"),
        ))
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sources()?;
        self.validate_keys()?;
        self.validate_providers()?;
        self.validate_paths()?;
        if self.realm.is_empty()
            || self
                .realm
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
        {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty printable ASCII without quotes or backslashes",
            ));
        }
        if !(16..=65_536).contains(&self.max_credential_bytes) {
            return Err(ConfigError::new(
                "max_credential_bytes",
                "must be between 16 and 65536",
            ));
        }
        if self.clock_skew_seconds > 86_400 {
            return Err(ConfigError::new("clock_skew_seconds", "must be <= 86400"));
        }
        if self.jwt_cache_size > 100_000 {
            return Err(ConfigError::new("jwt_cache_size", "must be <= 100000"));
        }
        if let Some(a) = &self.identity_assertion {
            let at = |f: &str| format!("identity_assertion.{f}");
            if !is_header_name(&a.header) || identity_header::ALL.contains(&a.header.as_str()) {
                return Err(ConfigError::new(
                    at("header"),
                    "must be a lowercase header name other than the identity headers",
                ));
            }
            for (name, value) in [
                ("issuer", &a.issuer),
                ("audience", &a.audience),
                ("key_id", &a.key_id),
            ] {
                if value.is_empty() || value.len() > 256 {
                    return Err(ConfigError::new(at(name), "must be 1-256 characters"));
                }
            }
            if !(10..=600).contains(&a.ttl_seconds) {
                return Err(ConfigError::new(
                    at("ttl_seconds"),
                    "must be between 10 and 600",
                ));
            }
        }
        // The key index and the JWKS keys are checked as they compile
        // (`Policy::new`, in the stage's `compile`): a module refuses them at
        // load all the same, and check-config runs that compile too.
        Ok(())
    }
}

impl Config {
    fn validate_sources(&self) -> Result<(), ConfigError> {
        if self.key_sources.is_empty() {
            return Err(ConfigError::new("key_sources", "must not be empty"));
        }
        for (i, source) in self.key_sources.iter().enumerate() {
            let at = |f: &str| format!("key_sources[{i}].{f}");
            match (&source.header, &source.query) {
                (Some(name), None) => {
                    if name.is_empty() {
                        return Err(ConfigError::new(at("header"), "must not be empty"));
                    }
                    if !is_header_name(name) {
                        return Err(ConfigError::new(
                            at("header"),
                            "must be a lowercase header name (a-z 0-9 - _ .)",
                        ));
                    }
                    if identity_header::ALL.contains(&name.as_str()) {
                        return Err(ConfigError::new(
                            at("header"),
                            "must not be one of the identity headers this filter writes",
                        ));
                    }
                    if let Some(prefix) = &source.value_prefix {
                        if prefix.is_empty() || !prefix.is_ascii() {
                            return Err(ConfigError::new(
                                at("value_prefix"),
                                "must be non-empty ASCII",
                            ));
                        }
                    }
                }
                (None, Some(param)) => {
                    if param.is_empty() {
                        return Err(ConfigError::new(at("query"), "must not be empty"));
                    }
                    if source.value_prefix.is_some() {
                        return Err(ConfigError::new(
                            at("value_prefix"),
                            "only applies to a header source",
                        ));
                    }
                }
                _ => {
                    return Err(ConfigError::new(
                        format!("key_sources[{i}]"),
                        "set exactly one of `header` or `query`",
                    ))
                }
            }
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        // First index of each id and hash: duplicates are found in one pass, so
        // a config with 100,000 keys loads in milliseconds, not minutes.
        let mut ids: HashMap<&str, usize> = HashMap::with_capacity(self.keys.len());
        let mut hashes: HashMap<String, usize> = HashMap::with_capacity(self.keys.len());
        for (i, key) in self.keys.iter().enumerate() {
            let at = |f: &str| format!("keys[{i}].{f}");
            check_identity(at("id"), &key.id)?;
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    at("sha256"),
                    "must be 64 hex digits (SHA-256 of the key)",
                ));
            }
            check_identity(at("org_id"), &key.org_id)?;
            check_identity(at("plan"), &key.plan)?;
            check_identity(at("role"), &key.role)?;
            if let Some(user) = &key.user_id {
                check_identity(at("user_id"), user)?;
            }
            let not_before = parse_time(at("not_before"), key.not_before.as_deref())?;
            let expires_at = parse_time(at("expires_at"), key.expires_at.as_deref())?;
            if let (Some(nb), Some(exp)) = (not_before, expires_at) {
                if nb >= exp {
                    return Err(ConfigError::new(
                        at("expires_at"),
                        "must be later than not_before",
                    ));
                }
            }
            if let Some(j) = ids.insert(&key.id, i) {
                return Err(ConfigError::new(
                    at("id"),
                    format!("duplicate of keys[{j}].id `{}`", key.id),
                ));
            }
            if let Some(j) = hashes.insert(key.sha256.to_ascii_lowercase(), i) {
                return Err(ConfigError::new(
                    at("sha256"),
                    format!("duplicate of keys[{j}].sha256: one key cannot belong to two entries"),
                ));
            }
        }
        Ok(())
    }

    fn validate_providers(&self) -> Result<(), ConfigError> {
        for (i, p) in self.jwt_providers.iter().enumerate() {
            let at = |f: &str| format!("jwt_providers[{i}].{f}");
            check_identity(at("name"), &p.name)?;
            if p.issuer.is_empty() {
                return Err(ConfigError::new(at("issuer"), "must not be empty"));
            }
            let earlier = self.jwt_providers.get(..i).unwrap_or_default();
            if earlier.iter().any(|q| q.name == p.name) {
                return Err(ConfigError::new(at("name"), "duplicate provider name"));
            }
            if earlier.iter().any(|q| q.issuer == p.issuer) {
                return Err(ConfigError::new(
                    at("issuer"),
                    "duplicate issuer: tokens must map to exactly one provider",
                ));
            }
            for (field, claim) in [
                ("org_id", &p.claims.org_id),
                ("plan", &p.claims.plan),
                ("role", &p.claims.role),
                ("user_id", &p.claims.user_id),
                ("key_id", &p.claims.key_id),
            ] {
                if claim.is_empty() {
                    return Err(ConfigError::new(
                        at(&format!("claims.{field}")),
                        "must not be empty",
                    ));
                }
            }
            if let Some(plan) = &p.default_plan {
                check_identity(at("default_plan"), plan)?;
            }
            if let Some(role) = &p.default_role {
                check_identity(at("default_role"), role)?;
            }
        }
        Ok(())
    }

    fn validate_paths(&self) -> Result<(), ConfigError> {
        for (i, m) in self.skip_paths.iter().enumerate() {
            match (&m.exact, &m.prefix) {
                (Some(p), None) | (None, Some(p)) if p.starts_with('/') => {}
                (Some(_), None) | (None, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("skip_paths[{i}]"),
                        "path must start with `/`",
                    ))
                }
                _ => {
                    return Err(ConfigError::new(
                        format!("skip_paths[{i}]"),
                        "set exactly one of `exact` or `prefix`",
                    ))
                }
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |f: &str| format!("rules[{i}].{f}");
            if !rule.prefix.starts_with('/') {
                return Err(ConfigError::new(at("prefix"), "must start with `/`"));
            }
            if let Some(m) = rule
                .methods
                .iter()
                .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(ConfigError::new(
                    at("methods"),
                    format!("`{m}` is not an uppercase HTTP method"),
                ));
            }
            if rule.allowed_roles.is_empty() && rule.allowed_orgs.is_empty() {
                return Err(ConfigError::new(
                    format!("rules[{i}]"),
                    "set allowed_roles and/or allowed_orgs",
                ));
            }
        }
        Ok(())
    }
}

fn parse_time(field: String, value: Option<&str>) -> Result<Option<i64>, ConfigError> {
    match value {
        None => Ok(None),
        Some(text) => crate::timestamp::parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| {
                ConfigError::new(
                    field,
                    "must be an RFC 3339 date-time like 2026-12-31T23:59:59Z",
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    /// The error the module refuses `json` with: validation, then the
    /// compile step (key index, JWKS keys).
    fn err(json: &str) -> String {
        match load::<Config>(json.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(c) => crate::policy::Policy::new(&c)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "accepted".into()),
        }
    }

    #[test]
    fn empty_config_is_valid_with_envoy_like_defaults() {
        let c = load::<Config>(b"").unwrap();
        assert_eq!(c.key_sources.len(), 2);
        assert_eq!(c.key_sources[0].header.as_deref(), Some("x-api-key"));
        assert_eq!(c.key_sources[1].value_prefix.as_deref(), Some("Bearer "));
        assert!(!c.forward_credential);
    }

    #[test]
    fn key_source_errors_name_the_field() {
        assert_eq!(
            err(r#"{"key_sources": [{"header": ""}]}"#),
            "key_sources[0].header: must not be empty"
        );
        assert!(err(r#"{"key_sources": [{"header": "X-Api-Key"}]}"#)
            .starts_with("key_sources[0].header: must be a lowercase"));
        assert!(
            err(r#"{"key_sources": [{"header": "x-mcp-org-id"}]}"#).contains("identity headers")
        );
        assert!(err(r#"{"key_sources": [{"header": "a", "query": "b"}]}"#)
            .starts_with("key_sources[0]: set exactly one"));
        assert!(
            err(r#"{"key_sources": [{"query": "k", "value_prefix": "x"}]}"#)
                .starts_with("key_sources[0].value_prefix")
        );
        assert_eq!(
            err(r#"{"key_sources": []}"#),
            "key_sources: must not be empty"
        );
        assert!(err(r#"{"key_sources": [{"cookie": "k"}]}"#).contains("unknown field `cookie`"));
    }

    fn key(id: &str, hash: &str) -> String {
        format!(r#"{{"id":"{id}","sha256":"{hash}","org_id":"acme","plan":"pro","role":"owner"}}"#)
    }

    #[test]
    fn a_hundred_thousand_keys_validate_and_a_late_duplicate_is_found() {
        let keys: Vec<String> = (0..100_000)
            .map(|i| key(&format!("k{i}"), &format!("{i:064x}")))
            .collect();
        let config = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        assert!(mesh_core::config_error::load::<Config>(config.as_bytes()).is_ok());
        let dup = format!(
            r#"{{"keys":[{},{}]}}"#,
            keys.join(","),
            key("late", &format!("{:064x}", 7))
        );
        assert!(err(&dup).starts_with("keys[100000].sha256: duplicate of keys[7].sha256"));
    }

    #[test]
    fn key_errors_name_the_field() {
        assert_eq!(
            err(&format!(r#"{{"keys":[{}]}}"#, key("k1", "abc"))),
            "keys[0].sha256: must be 64 hex digits (SHA-256 of the key)"
        );
        let upper = HASH.to_uppercase();
        assert!(err(&format!(
            r#"{{"keys":[{},{}]}}"#,
            key("k1", HASH),
            key("k2", &upper)
        ))
        .starts_with("keys[1].sha256: duplicate of keys[0].sha256"));
        let other = HASH.replace('5', "6");
        assert!(err(&format!(
            r#"{{"keys":[{},{}]}}"#,
            key("k1", HASH),
            key("k1", &other)
        ))
        .starts_with("keys[1].id: duplicate of keys[0].id"));
        assert!(err(&format!(r#"{{"keys":[{}]}}"#, key("bad id", HASH))).starts_with("keys[0].id:"));
        assert!(err(&format!(
            r#"{{"keys":[{}]}}"#,
            key("k1", HASH).replace("\"pro\"", "\"p\\nro\"")
        ))
        .starts_with("keys[0].plan:"));
        let dated = key("k1", HASH).replace(
            "\"role\"",
            r#""not_before":"2027-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z","role""#,
        );
        assert_eq!(
            err(&format!(r#"{{"keys":[{dated}]}}"#)),
            "keys[0].expires_at: must be later than not_before"
        );
        let bad_date = key("k1", HASH).replace("\"role\"", r#""expires_at":"tomorrow","role""#);
        assert!(err(&format!(r#"{{"keys":[{bad_date}]}}"#))
            .starts_with("keys[0].expires_at: must be an RFC 3339"));
        assert!(err(r#"{"keys":[{"id":"k"}]}"#).contains("missing field"));
    }

    #[test]
    fn path_and_rule_errors() {
        assert!(err(r#"{"skip_paths":[{"exact":"health"}]}"#)
            .starts_with("skip_paths[0]: path must start"));
        assert!(err(r#"{"skip_paths":[{}]}"#).starts_with("skip_paths[0]: set exactly one"));
        assert!(err(r#"{"rules":[{"prefix":"/a"}]}"#).starts_with("rules[0]: set allowed_roles"));
        assert!(
            err(r#"{"rules":[{"prefix":"/a","methods":["post"],"allowed_roles":["owner"]}]}"#)
                .starts_with("rules[0].methods: `post`")
        );
        assert!(
            err(r#"{"rules":[{"prefix":"a","allowed_roles":["owner"]}]}"#)
                .starts_with("rules[0].prefix")
        );
    }

    #[test]
    fn scalar_limits() {
        assert!(err(r#"{"realm":"a\"b"}"#).starts_with("realm:"));
        assert!(err(r#"{"max_credential_bytes":1}"#).starts_with("max_credential_bytes:"));
        assert!(err(r#"{"max_body_bytes":1}"#).contains("unknown field `max_body_bytes`"));
        assert!(err(r#"{"clock_skew_seconds":100000}"#).starts_with("clock_skew_seconds:"));
        assert!(err(r#"{"jwt_cache_size":1000000}"#).starts_with("jwt_cache_size:"));
    }

    #[test]
    fn provider_errors_name_the_field() {
        let jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","alg":"HS256"}]}"#;
        let p = |name: &str, iss: &str| {
            format!(r#"{{"name":"{name}","issuer":"{iss}","local_jwks":{jwks}}}"#)
        };
        assert!(
            load::<Config>(format!(r#"{{"jwt_providers":[{}]}}"#, p("a", "i1")).as_bytes()).is_ok()
        );
        assert!(err(&format!(
            r#"{{"jwt_providers":[{},{}]}}"#,
            p("a", "i1"),
            p("b", "i1")
        ))
        .starts_with("jwt_providers[1].issuer: duplicate"));
        assert!(err(&format!(
            r#"{{"jwt_providers":[{},{}]}}"#,
            p("a", "i1"),
            p("a", "i2")
        ))
        .starts_with("jwt_providers[1].name: duplicate"));
        assert!(
            err(r#"{"jwt_providers":[{"name":"a","issuer":"i","local_jwks":{"keys":[]}}]}"#)
                .starts_with("jwt_providers[0].local_jwks: must contain at least one key")
        );
        assert!(err(r#"{"jwt_providers":[{"name":"a","issuer":"i","local_jwks":{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}}]}"#)
            .starts_with("jwt_providers[0].local_jwks.keys[0]"));
        assert!(
            err(r#"{"jwt_providers":[{"name":"a","issuer":"i","local_jwks":[]}]}"#)
                .starts_with("jwt_providers[0].local_jwks")
        );
        assert!(err(&format!(
            r#"{{"jwt_providers":[{{"name":"a","issuer":"i","local_jwks":{jwks},"claims":{{"org_id":""}}}}]}}"#
        ))
        .starts_with("jwt_providers[0].claims.org_id"));
    }

    #[test]
    fn identity_values() {
        assert!(is_identity_value("acme"));
        assert!(is_identity_value("user@example.com"));
        assert!(!is_identity_value(""));
        assert!(!is_identity_value("a b"));
        assert!(!is_identity_value("a,b"));
        assert!(!is_identity_value(&"a".repeat(MAX_IDENTITY_LEN + 1)));
    }
}
