//! pluginConfig of mcp-guard.
//!
//! ```json
//! {
//!   "header_check": "enforce",
//!   "batches": "refuse",
//!   "max_body_bytes": 65536,
//!   "default": "allow",
//!   "rules": [
//!     {"name": "rounds-need-a-moderator", "tools": ["run_debate_round"],
//!      "allow": {"roles": ["owner", "moderator"]}},
//!     {"name": "no-deletes-on-free", "tools": ["delete_*"], "deny": {"plans": ["free"]}}
//!   ],
//!   "lists": {"filter": true, "max_bytes": 262144, "on_overflow": "block"}
//! }
//! ```
//! Every field is optional. A call is matched against the rules in order;
//! the first rule whose target (methods, tools, prompts, resources) covers
//! the call decides: an `allow` rule lets in the callers its subject names
//! and refuses the others, a `deny` rule refuses the callers its subject
//! names and lets in the others. A call no rule covers gets `default`.

use mesh_core::config_error::{ConfigError, Validate};
use serde::Deserialize;

/// Largest `max_body_bytes`: Envoy buffers a held body up to its own
/// per-request buffer limit (1 MiB by default) anyway.
pub const MAX_BODY_CAP: usize = 1024 * 1024;
/// Largest `lists.max_bytes`: a list response is kept whole in the Wasm heap
/// while it is filtered.
pub const MAX_LIST_CAP: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What to do when a 2026-07-28 request's MCP headers disagree with its
    /// body: `enforce` (400 with the SDK's JSON-RPC error, and decisions are
    /// made on the headers), `log` (count and log; decisions wait for the
    /// body), `off`.
    pub header_check: HeaderCheck,
    /// JSON-RPC batches: `refuse` them, or `check` every message. Unset:
    /// refuse for protocol 2025-06-18 and later (batches left MCP there),
    /// check for older clients.
    pub batches: Option<Batches>,
    /// Largest request body read to check headers and authorize handshake-era
    /// calls; the body is held until its message closes or this bound.
    pub max_body_bytes: usize,
    /// The answer for a call no rule covers.
    pub default: Effect,
    pub rules: Vec<Rule>,
    pub lists: Lists,
    /// `realm` of the `WWW-Authenticate` challenge on a denial.
    pub realm: String,
    /// Path prefixes that are not MCP (the LLM provider APIs on a gateway):
    /// their requests pass untouched. A path skips only when it is already
    /// in normal form (`/v1/../mcp` does not skip a `/v1/` prefix).
    pub skip_paths: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            header_check: HeaderCheck::Enforce,
            batches: None,
            max_body_bytes: 64 * 1024,
            default: Effect::Allow,
            rules: Vec::new(),
            lists: Lists::default(),
            realm: "mcp".into(),
            skip_paths: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HeaderCheck {
    Enforce,
    Log,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Batches {
    Refuse,
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// One authorization rule. Patterns are exact names, or globs where `*`
/// matches any run of characters (`delete_*`, `debate://*/transcript`).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Shown in the access log (`mcp_authz_rule`) and the denial's data;
    /// unnamed rules show as `rules[<index>]`.
    #[serde(default)]
    pub name: Option<String>,
    /// JSON-RPC methods (`tools/call`, `resources/*`); empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Tool names of `tools/call`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Prompt names of `prompts/get`.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Resource URIs of `resources/read`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The callers this rule lets in (the others are refused).
    #[serde(default)]
    pub allow: Option<Subject>,
    /// The callers this rule refuses (the others are let in).
    #[serde(default)]
    pub deny: Option<Subject>,
}

/// Who a rule is about: a caller matches when every list that is set names
/// it (any entry of a list will do). `{}` is everyone.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Subject {
    pub roles: Vec<String>,
    pub plans: Vec<String>,
    pub orgs: Vec<String>,
    pub key_ids: Vec<String>,
    /// JWT scopes (the token's `scope` claim, or the claim api-key-auth's
    /// `claims.scope` names), as api-key-auth forwards them.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Lists {
    /// Remove what the caller may not call from `tools/list`, `prompts/list`
    /// and `resources/list` results.
    pub filter: bool,
    /// Largest list response (JSON body, or one SSE event) filtered.
    pub max_bytes: usize,
    /// A list over `max_bytes`, or one that cannot be read (compressed):
    /// `block` answers the call with a JSON-RPC error, `pass` lets it through
    /// unfiltered. Counted either way.
    pub on_overflow: Overflow,
}

impl Default for Lists {
    fn default() -> Self {
        Self {
            filter: true,
            max_bytes: 256 * 1024,
            on_overflow: Overflow::Block,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    Block,
    Pass,
}

/// Which `tools/call`-like method a target list belongs to.
const TARGETS: [(&str, &str); 3] = [
    ("tools", "tools/call"),
    ("prompts", "prompts/get"),
    ("resources", "resources/read"),
];

impl Rule {
    pub fn targets(&self) -> [(&'static str, &'static str, &[String]); 3] {
        let [t, p, r] = TARGETS;
        [
            (t.0, t.1, &self.tools),
            (p.0, p.1, &self.prompts),
            (r.0, r.1, &self.resources),
        ]
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        match (&self.allow, &self.deny) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(at, "set either allow or deny, not both"))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    at,
                    "set allow (the callers let in) or deny (the callers refused)",
                ))
            }
            _ => {}
        }
        if let Some(name) = &self.name {
            if name.is_empty() || name.len() > 64 || !name.bytes().all(is_label_byte) {
                return Err(ConfigError::new(
                    field("name"),
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        patterns(&field("methods"), &self.methods)?;
        for (list, method, values) in self.targets() {
            patterns(&field(list), values)?;
            if !values.is_empty()
                && !self.methods.is_empty()
                && !self.methods.iter().any(|m| crate::glob::matches(m, method))
            {
                return Err(ConfigError::new(
                    field("methods"),
                    format!("must include {method}: only {method} names what {list} lists"),
                ));
            }
        }
        let (which, subject) = match (&self.allow, &self.deny) {
            (Some(s), _) => ("allow", s),
            (_, Some(s)) => ("deny", s),
            _ => return Ok(()),
        };
        subject.validate(&field(which))
    }
}

impl Subject {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        for (name, values) in [
            ("roles", &self.roles),
            ("plans", &self.plans),
            ("orgs", &self.orgs),
            ("key_ids", &self.key_ids),
            ("scopes", &self.scopes),
        ] {
            for (i, v) in values.iter().enumerate() {
                if v.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.{name}[{i}]"),
                        "must not be empty",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn patterns(at: &str, values: &[String]) -> Result<(), ConfigError> {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            return Err(ConfigError::new(format!("{at}[{i}]"), "must not be empty"));
        }
        if v.len() > 256 {
            return Err(ConfigError::new(
                format!("{at}[{i}]"),
                "must be at most 256 bytes (longer names are never compared)",
            ));
        }
    }
    Ok(())
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1024..=MAX_BODY_CAP).contains(&self.max_body_bytes) {
            return Err(ConfigError::new(
                "max_body_bytes",
                format!("must be between 1024 and {MAX_BODY_CAP}"),
            ));
        }
        if self.lists.filter && !(1024..=MAX_LIST_CAP).contains(&self.lists.max_bytes) {
            return Err(ConfigError::new(
                "lists.max_bytes",
                format!("must be between 1024 and {MAX_LIST_CAP}"),
            ));
        }
        if self.realm.is_empty()
            || !self
                .realm
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"')
        {
            return Err(ConfigError::new(
                "realm",
                "must be printable ASCII without quotes or spaces",
            ));
        }
        for (i, p) in self.skip_paths.iter().enumerate() {
            if !p.starts_with('/') || mesh_core::path::normalize(p) != *p {
                return Err(ConfigError::new(
                    format!("skip_paths[{i}]"),
                    "must be a path prefix in normal form, starting with /",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            rule.validate(&at)?;
            if let Some(name) = &rule.name {
                if !names.insert(name.as_str()) {
                    return Err(ConfigError::new(
                        format!("{at}.name"),
                        format!("duplicate rule name {name:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    fn err(json: &str) -> String {
        match load::<Config>(json.as_bytes()) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_enforce_and_allow() {
        let c = load::<Config>(b"{}").unwrap();
        assert_eq!(c.header_check, HeaderCheck::Enforce);
        assert_eq!(c.default, Effect::Allow);
        assert!(c.lists.filter);
        assert_eq!(c.batches, None);
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (
                r#"{"header_check": "strict"}"#,
                "header_check: unknown variant `strict`",
            ),
            (
                r#"{"max_body_bytes": 10}"#,
                "max_body_bytes: must be between 1024",
            ),
            (r#"{"rules": [{"tools": ["x"]}]}"#, "rules[0]: set allow"),
            (
                r#"{"rules": [{"tools": ["x"], "allow": {}, "deny": {}}]}"#,
                "rules[0]: set either allow or deny",
            ),
            (
                r#"{"rules": [{"tools": ["x"], "allow": {"roles": [""]}}]}"#,
                "rules[0].allow.roles[0]: must not be empty",
            ),
            (
                r#"{"rules": [{"methods": ["tools/list"], "tools": ["x"], "deny": {}}]}"#,
                "rules[0].methods: must include tools/call",
            ),
            (
                r#"{"rules": [{"resources": [""], "deny": {}}]}"#,
                "rules[0].resources[0]: must not be empty",
            ),
            (
                r#"{"rules": [{"name": "a", "deny": {}}, {"name": "a", "deny": {}}]}"#,
                "rules[1].name: duplicate rule name",
            ),
            (
                r#"{"rules": [{"name": "a b", "deny": {}}]}"#,
                "rules[0].name: must be 1-64",
            ),
            (
                r#"{"rules": [{"tool": ["x"], "deny": {}}]}"#,
                "rules[0].tool: unknown field `tool`",
            ),
            (
                r#"{"rules": [{"deny": {"role": ["x"]}}]}"#,
                "rules[0].deny.role: unknown field `role`",
            ),
            (
                r#"{"lists": {"max_bytes": 5}}"#,
                "lists.max_bytes: must be between",
            ),
            (r#"{"batches": "sometimes"}"#, "batches: unknown variant"),
            (
                r#"{"skip_paths": ["v1/"]}"#,
                "skip_paths[0]: must be a path prefix",
            ),
            (
                r#"{"skip_paths": ["/a/../b"]}"#,
                "skip_paths[0]: must be a path prefix",
            ),
        ];
        for (json, want) in cases {
            let got = err(json);
            assert!(got.starts_with(want), "{json}: {got}");
        }
    }

    #[test]
    fn a_method_glob_may_cover_the_target() {
        assert_eq!(
            err(r#"{"rules": [{"methods": ["tools/*"], "tools": ["x"], "deny": {}}]}"#),
            "accepted"
        );
    }
}
