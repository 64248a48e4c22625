//! debate-access-log's pluginConfig compiled once per VM: path patterns
//! parsed, JSON pointers numbered for the body scanner, the sampling salt
//! keyed. Validation is this compilation, so a config that loads is one
//! that runs.

use crate::config::{Config, DebateIdSource, MAX_BODY_CAP};
use crate::path_pattern::PathPattern;
use crate::sampling::Salt;
use mesh_core::config_error::{ConfigError, Validate};
use mesh_core::jsonrpc::MAX_FACT_LEN;
use mesh_core::jsonrpc_scan::{Pointers, MAX_POINTERS};

/// Headers that carry credentials: never a source of a logged value.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];

/// A debate-id source ready to use.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Path(PathPattern),
    Header(String),
    /// The pointer and its index in [`Settings::pointers`].
    JsonPointer(String, usize),
}

/// The configuration with its path patterns compiled, built once in `on_configure`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_body_bytes: usize,
    pub max_response_body_bytes: usize,
    pub sources: Vec<Source>,
    pub session_header: String,
    pub max_value_len: usize,
    pub success_rate: f64,
    pub always_log_traced: bool,
    /// The JSON pointers of the debate-id sources, for the body scanner.
    pub pointers: Pointers,
    /// The sampling hash key.
    pub salt: Salt,
}

impl Config {
    /// Validates and compiles in one pass, naming the field of any mistake.
    pub fn compile(&self) -> Result<Settings, ConfigError> {
        if self.max_body_bytes > MAX_BODY_CAP {
            return Err(ConfigError::new(
                "max_body_bytes",
                format!("must be at most {MAX_BODY_CAP}"),
            ));
        }
        if self.max_response_body_bytes > MAX_BODY_CAP {
            return Err(ConfigError::new(
                "max_response_body_bytes",
                format!("must be at most {MAX_BODY_CAP}"),
            ));
        }
        if self.max_value_len == 0 || self.max_value_len > MAX_FACT_LEN {
            return Err(ConfigError::new(
                "max_value_len",
                format!("must be between 1 and {MAX_FACT_LEN}"),
            ));
        }
        check_header_name("session_header", &self.session_header)?;
        let rate = self.sampling.success_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::new(
                "sampling.success_rate",
                "must be between 0 and 1",
            ));
        }
        let salt =
            match &self.sampling.salt {
                Some(salt) if salt.chars().count() < 16 => {
                    return Err(ConfigError::new(
                        "sampling.salt",
                        "must be at least 16 characters",
                    ))
                }
                Some(salt) => Salt::new(salt),
                None if rate > 0.0 && rate < 1.0 => return Err(ConfigError::new(
                    "sampling.salt",
                    "required when success_rate is between 0 and 1: a mesh-wide secret, so that \
                     clients cannot pick trace ids that are never logged",
                )),
                None => Salt::default(),
            };
        let mut sources = Vec::with_capacity(self.debate_id_sources.len());
        let mut pointer_index = 0;
        for (i, source) in self.debate_id_sources.iter().enumerate() {
            let mut compiled = compile_source(i, source)?;
            if let Source::JsonPointer(_, index) = &mut compiled {
                *index = pointer_index;
                pointer_index += 1;
            }
            sources.push(compiled);
        }
        let pointers = Pointers::parse(sources.iter().filter_map(|s| match s {
            Source::JsonPointer(p, _) => Some(p.as_str()),
            _ => None,
        }))
        .ok_or_else(|| {
            ConfigError::new(
                "debate_id_sources",
                format!("at most {MAX_POINTERS} json_pointer sources"),
            )
        })?;
        Ok(Settings {
            salt,
            pointers,
            max_body_bytes: self.max_body_bytes,
            max_response_body_bytes: self.max_response_body_bytes,
            sources,
            session_header: self.session_header.clone(),
            max_value_len: self.max_value_len,
            success_rate: rate,
            always_log_traced: self.sampling.always_log_traced,
        })
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.compile().map(|_| ())
    }
}

impl Settings {
    /// True when request bodies are read.
    pub fn wants_body(&self) -> bool {
        self.max_body_bytes > 0
    }

    /// True when JSON-RPC responses are read for errors.
    pub fn watches_responses(&self) -> bool {
        self.max_response_body_bytes > 0
    }
}

fn compile_source(i: usize, source: &DebateIdSource) -> Result<Source, ConfigError> {
    match source {
        DebateIdSource::PathPattern(p) => {
            PathPattern::parse(p).map(Source::Path).map_err(|reason| {
                ConfigError::new(format!("debate_id_sources[{i}].path_pattern"), reason)
            })
        }
        DebateIdSource::Header(h) => {
            check_header_name(&format!("debate_id_sources[{i}].header"), h)?;
            Ok(Source::Header(h.clone()))
        }
        DebateIdSource::JsonPointer(p) => {
            if !p.starts_with('/') {
                return Err(ConfigError::new(
                    format!("debate_id_sources[{i}].json_pointer"),
                    "must start with / (RFC 6901), e.g. /params/arguments/debate_id",
                ));
            }
            Ok(Source::JsonPointer(p.clone(), 0))
        }
    }
}

fn check_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let token =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.!#$%&'*+^`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(ConfigError::new(
            field,
            "must be a lowercase HTTP header name",
        ));
    }
    if SECRET_HEADERS.contains(&name) {
        return Err(ConfigError::new(
            field,
            format!("{name} carries credentials and is never logged"),
        ));
    }
    Ok(())
}
