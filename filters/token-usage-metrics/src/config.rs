//! pluginConfig of token-usage-metrics.

use mesh_core::config_error::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Distinct organizations kept as label values before `other`.
    pub max_orgs: usize,
    /// Distinct models kept as label values before `other`.
    pub max_models: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_orgs: 100,
            max_models: 50,
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_orgs == 0 {
            return Err(ConfigError::new("max_orgs", "must be > 0"));
        }
        if self.max_models == 0 {
            return Err(ConfigError::new("max_models", "must be > 0"));
        }
        Ok(())
    }
}
