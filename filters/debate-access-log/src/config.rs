//! pluginConfig of debate-access-log.

use mesh_core::config_error::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Largest request body prefix read for MCP facts.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes > 1024 * 1024 {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be at most 1048576",
            ));
        }
        Ok(())
    }
}
