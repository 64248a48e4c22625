//! Global mode: the configuration of the rate-limit service (issue 5).

use mesh_core::config_error::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Envoy cluster (HTTP/2) of the envoy.service.ratelimit.v3 service.
    pub cluster: String,
}

impl GlobalConfig {
    pub fn validate_in(&self, field: &str) -> Result<(), ConfigError> {
        if self.cluster.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.cluster"),
                "must not be empty",
            ));
        }
        Ok(())
    }
}
