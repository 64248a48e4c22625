//! One error type for every pluginConfig mistake: the field path and the reason.
//!
//! Envoy shows exactly one log line when a filter refuses its configuration, so
//! the message must name the field (`plans.free.requests_per_minute`) and say
//! what is wrong with it.

use serde::de::DeserializeOwned;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending field (`keys[2].hash`), or `<root>`.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Parses a JSON pluginConfig into `T`, reporting the path of the field that
/// failed. An empty configuration is treated as `{}` so that every field's
/// default applies.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let text = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let field = match path.as_str() {
            "" | "." | "?" => "<root>".to_string(),
            _ => path,
        };
        let inner = err.inner();
        // For broken JSON the line and column are the useful part; for a wrong
        // value the field path says more than a position.
        let reason = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else {
            strip_location(&inner.to_string())
        };
        ConfigError::new(field, reason)
    })?;
    de.end()
        .map_err(|err| ConfigError::new("<root>", err.to_string()))?;
    Ok(value)
}

/// serde_json appends "at line 1 column 42"; the field path says more.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(pos) => message[..pos].to_string(),
        None => message.to_string(),
    }
}

/// Every filter config implements this: serde does the shape, `validate` the
/// meaning (ranges, references between fields, duplicates).
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Parses and validates in one step: what `on_configure` and `check-config` run.
pub fn load<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, ConfigError> {
    let config: T = parse_json(bytes)?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Plan {
        #[allow(dead_code)]
        requests_per_minute: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[allow(dead_code)]
        plans: BTreeMap<String, Plan>,
    }

    #[test]
    fn names_the_nested_field() {
        let err =
            parse_json::<Cfg>(br#"{"plans": {"free": {"requests_per_minute": -1}}}"#).unwrap_err();
        assert_eq!(err.field, "plans.free.requests_per_minute");
        assert!(err.reason.contains("invalid value"), "{}", err.reason);
        assert!(!err.reason.contains("line"), "{}", err.reason);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse_json::<Cfg>(br#"{"plans": {}, "plnas": 1}"#).unwrap_err();
        assert!(err.reason.contains("unknown field `plnas`"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported_at_root() {
        let err = parse_json::<Cfg>(b"{not json").unwrap_err();
        assert_eq!(err.field, "<root>");
        assert!(err.reason.starts_with("not valid JSON: "), "{err}");
        assert!(err.reason.contains("line 1 column 2"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_json::<Cfg>(br#"{"plans": {}} x"#).is_err());
    }

    #[test]
    fn empty_config_means_defaults() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct D {
            x: u32,
        }
        assert_eq!(parse_json::<D>(b"  ").unwrap().x, 0);
    }

    #[test]
    fn display_is_field_colon_reason() {
        assert_eq!(
            ConfigError::new("a.b", "must be > 0").to_string(),
            "a.b: must be > 0"
        );
    }
}
