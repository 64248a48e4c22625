//! pluginConfig of api-key-auth.

use mesh_core::config_error::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    /// SHA-256 of the key, 64 lowercase or uppercase hex digits.
    pub hash: String,
    pub org_id: String,
    pub plan: String,
    pub role: String,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Header carrying the API key.
    pub header: String,
    pub keys: Vec<KeyEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            header: "x-api-key".into(),
            keys: Vec::new(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.header.trim().is_empty() {
            return Err(ConfigError::new("header", "must not be empty"));
        }
        for (i, key) in self.keys.iter().enumerate() {
            if key.hash.len() != 64 || !key.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    format!("keys[{i}].hash"),
                    "must be 64 hex digits (SHA-256)",
                ));
            }
        }
        Ok(())
    }
}
