//! pluginConfig of org-rate-limit.

use mesh_core::config_error::{ConfigError, Validate};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub requests_per_minute: u64,
    #[serde(default)]
    pub burst: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub plans: BTreeMap<String, Plan>,
    pub default_plan: String,
}

impl Default for Config {
    fn default() -> Self {
        let mut plans = BTreeMap::new();
        plans.insert(
            "free".to_string(),
            Plan {
                requests_per_minute: 60,
                burst: None,
            },
        );
        Self {
            plans,
            default_plan: "free".into(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, plan) in &self.plans {
            if plan.requests_per_minute == 0 {
                return Err(ConfigError::new(
                    format!("plans.{name}.requests_per_minute"),
                    "must be > 0",
                ));
            }
        }
        if !self.plans.contains_key(&self.default_plan) {
            return Err(ConfigError::new(
                "default_plan",
                format!("unknown plan `{}`", self.default_plan),
            ));
        }
        Ok(())
    }
}
