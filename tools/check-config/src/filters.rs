//! The five filters as check-config sees them: each one's own config type and
//! loader (the exact code `on_configure` runs in the sidecar), its Istio phase
//! and its place in the chain.

use mesh_core::config_error::ConfigError;
use mesh_core::mock_host::MockHost;
use mesh_core::stage::Host;
use serde_json::Value;

pub struct Filter {
    /// Crate, `.wasm`, OCI repository and WasmPlugin `pluginName` (root id).
    pub name: &'static str,
    /// The Istio phase the identity and filter-state contracts assume.
    pub phase: &'static str,
    /// Position in the chain: auth, MCP guard, rate limit, access log, token usage.
    pub rank: u8,
    load: fn(&[u8]) -> Result<(), ConfigError>,
    schema: fn() -> Value,
}

impl Filter {
    /// Parses and validates a JSON pluginConfig exactly like the filter does.
    pub fn load(&self, json: &[u8]) -> Result<(), ConfigError> {
        (self.load)(json)
    }

    /// JSON Schema of the pluginConfig, generated from the Rust types.
    pub fn schema(&self) -> Value {
        let mut schema = (self.schema)();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "title".into(),
                Value::String(format!("{} pluginConfig", self.name)),
            );
            obj.insert(
                "description".into(),
                Value::String(format!(
                    "pluginConfig of the {} Proxy-Wasm filter (WasmPlugin spec.pluginConfig). \
                     Generated from the filter's Rust config types by `make schemas`; \
                     `check-config` also runs the filter's own validation.",
                    self.name
                )),
            );
        }
        schema
    }
}

/// What a module's `on_configure` runs: parse, validate and compile its
/// stages (against a host in memory).
type Build =
    fn(&[u8], &dyn Host) -> Result<Vec<std::rc::Rc<dyn mesh_core::stage::Stage>>, ConfigError>;

fn load_with(build: Build, json: &[u8]) -> Result<(), ConfigError> {
    build(json, &MockHost::default()).map(drop)
}

fn schema_of<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

pub const FILTERS: [Filter; 5] = [
    Filter {
        name: "api-key-auth",
        phase: "AUTHN",
        rank: 0,
        load: |json| load_with(api_key_auth::stage::build, json),
        schema: schema_of::<api_key_auth::config::Config>,
    },
    Filter {
        name: "mcp-guard",
        phase: "AUTHZ",
        rank: 1,
        load: |json| load_with(mcp_guard::stage::build, json),
        schema: schema_of::<mcp_guard::config::Config>,
    },
    Filter {
        name: "org-rate-limit",
        phase: "AUTHZ",
        rank: 2,
        load: |json| load_with(org_rate_limit::stage::build, json),
        schema: schema_of::<org_rate_limit::config::Config>,
    },
    Filter {
        name: "debate-access-log",
        phase: "STATS",
        rank: 3,
        load: |json| load_with(debate_access_log::stage::build, json),
        schema: schema_of::<debate_access_log::config::Config>,
    },
    Filter {
        name: "token-usage-metrics",
        phase: "STATS",
        rank: 4,
        load: |json| load_with(token_usage_metrics::stage::build, json),
        schema: schema_of::<token_usage_metrics::config::Config>,
    },
];

/// The composed module: the five as stages, one pluginConfig section each.
/// Its phase and place in the chain are those of its first section
/// ([`first_section`]).
pub static COMPOSED: Filter = Filter {
    name: "mcp-mesh",
    phase: "AUTHN",
    rank: 0,
    load: |json| load_with(mcp_mesh::build, json),
    schema: schema_of::<mcp_mesh::Config>,
};

/// Every module a WasmPlugin can load: the five filters and mcp-mesh.
pub fn modules() -> impl Iterator<Item = &'static Filter> {
    FILTERS.iter().chain(std::iter::once(&COMPOSED))
}

pub fn by_name(name: &str) -> Option<&'static Filter> {
    modules().find(|f| f.name == name)
}

/// The filter whose phase and chain place a plugin of `module` takes: the
/// module itself, or for mcp-mesh the first stage its pluginConfig enables.
pub fn first_section(module: &'static Filter, config: Option<&Value>) -> &'static Filter {
    if module.name != COMPOSED.name {
        return module;
    }
    FILTERS
        .iter()
        .find(|f| {
            config
                .and_then(|c| c.get(f.name.replace('-', "_")))
                .is_some()
        })
        .unwrap_or(module)
}

pub fn names() -> String {
    modules().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_accepts_its_defaults() {
        for f in &FILTERS {
            f.load(b"{}").unwrap_or_else(|e| panic!("{}: {e}", f.name));
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_every_filter() {
        for f in &FILTERS {
            let err = f.load(br#"{"no_such_field": 1}"#).unwrap_err();
            assert!(err.reason.contains("no_such_field"), "{}: {err}", f.name);
        }
    }

    #[test]
    fn mcp_mesh_takes_the_phase_of_its_first_section() {
        let config = serde_json::json!({"debate_access_log": {}, "org_rate_limit": {}});
        assert_eq!(
            first_section(&COMPOSED, Some(&config)).name,
            "org-rate-limit"
        );
        assert_eq!(
            first_section(&FILTERS[3], Some(&config)).name,
            "debate-access-log"
        );
        assert!(COMPOSED.load(b"{}").is_err(), "no section enabled");
        COMPOSED
            .load(br#"{"token_usage_metrics": {}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn schemas_are_objects_with_a_title() {
        for f in modules() {
            let s = f.schema();
            assert_eq!(s["title"], format!("{} pluginConfig", f.name));
            assert_eq!(s["additionalProperties"], Value::Bool(false), "{}", f.name);
        }
    }
}
