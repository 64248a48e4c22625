//! What an LLM request body says about its own size: the output maximum
//! (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
//! `generationConfig.maxOutputTokens`) and the `model`.
//!
//! Read from the body the budget holds (at most `max_request_body_bytes`).
//! Lenient: a field of the wrong type reads as absent, so the reservation
//! falls back to the configured default instead of failing the request.

use mesh_core::llm_usage::lenient;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default, deserialize_with = "lenient::string")]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient::count")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    max_completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    max_output_tokens: Option<u64>,
    #[serde(
        default,
        rename = "generationConfig",
        deserialize_with = "lenient::object"
    )]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct GenerationConfig {
    #[serde(
        default,
        rename = "maxOutputTokens",
        deserialize_with = "lenient::count"
    )]
    max_output_tokens: Option<u64>,
}

/// The facts of one request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizing {
    pub model: Option<String>,
    /// The largest output maximum the body names (the provider honours one
    /// of them; reserving the largest is never cheaper).
    pub max_output: Option<u64>,
}

/// Reads a complete JSON body; anything else (cut at the cap, not JSON, a
/// duplicate key) says nothing.
pub fn sizing(body: &[u8]) -> Sizing {
    // serde reads a struct from an array too, by position: objects only.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Sizing::default();
    }
    let Ok(b) = serde_json::from_slice::<Body>(body) else {
        return Sizing::default();
    };
    let max_output = [
        b.max_tokens,
        b.max_completion_tokens,
        b.max_output_tokens,
        b.generation_config.and_then(|g| g.max_output_tokens),
    ]
    .into_iter()
    .flatten()
    .max();
    Sizing {
        model: b.model,
        max_output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_spelling_of_the_maximum_is_read() {
        let s = sizing(
            br#"{"messages":[{"role":"user","content":"x"}],"model":"gpt-4o","max_tokens":50}"#,
        );
        assert_eq!(
            s,
            Sizing {
                model: Some("gpt-4o".into()),
                max_output: Some(50)
            }
        );
        assert_eq!(
            sizing(br#"{"max_completion_tokens":9,"max_tokens":3}"#).max_output,
            Some(9)
        );
        assert_eq!(sizing(br#"{"max_output_tokens":12}"#).max_output, Some(12));
        assert_eq!(
            sizing(br#"{"generationConfig":{"maxOutputTokens":77}}"#).max_output,
            Some(77)
        );
    }

    #[test]
    fn hostile_or_cut_bodies_say_nothing_rather_than_something_cheap() {
        assert_eq!(sizing(br#"{"max_tokens":"5"}"#).max_output, None);
        assert_eq!(sizing(br#"{"max_tokens":-5}"#).max_output, None);
        assert_eq!(sizing(br#"{"max_tokens":5.5}"#).max_output, None);
        assert_eq!(
            sizing(br#"{"max_tokens":5,"max_tokens":1}"#),
            Sizing::default()
        );
        assert_eq!(sizing(br#"{"model":"gpt-4o","max_tok"#), Sizing::default());
        assert_eq!(sizing(b"[1,2]"), Sizing::default());
        assert_eq!(sizing(br#"{"generationConfig":7}"#).max_output, None);
    }
}
