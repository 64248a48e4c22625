//! How a spent budget answers: 429 in the provider's own error format, so
//! the official SDKs raise their rate-limit error (openai `RateLimitError`,
//! anthropic `RateLimitError`, google-genai `ClientError` 429
//! `RESOURCE_EXHAUSTED`), with `Retry-After` and `RateLimit`/
//! `RateLimit-Policy` naming the budget.

use mesh_core::llm_usage::Api;
use mesh_core::ratelimit_headers::{structured, RETRY_AFTER};
use mesh_core::token_bucket::Quota;

/// The denial of one call: status, headers, body.
pub struct Denial {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The spent budget as the headers describe it.
pub struct Spent<'a> {
    pub name: &'a str,
    /// Limit and remaining as shown (tokens, or millionths of the cost unit).
    pub limit: u64,
    pub remaining: u64,
    pub window_secs: u64,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

/// `RateLimit-Policy` and `RateLimit` of one budget.
fn policy_headers(spent: &Spent<'_>) -> [(&'static str, String); 2] {
    let quota = Quota {
        limit: spent.limit,
        remaining: spent.remaining,
        reset_secs: spent.reset_secs,
        retry_after_secs: spent.reset_secs,
        window_secs: spent.window_secs,
    };
    structured(spent.name, &quota)
}

pub fn denial(api: Api, spent: &Spent<'_>) -> Denial {
    // Budget names are label-safe ([A-Za-z0-9_.:/@-]): nothing to escape.
    let message = format!(
        "LLM token budget `{}` is spent: {} left of {}, resets in {} s",
        spent.name, spent.remaining, spent.limit, spent.reset_secs
    );
    let body = match api {
        Api::OpenAiChat | Api::OpenAiResponses => format!(
            r#"{{"error":{{"message":"{message}","type":"tokens","param":null,"code":"rate_limit_exceeded"}}}}"#
        ),
        Api::AnthropicMessages => format!(
            r#"{{"type":"error","error":{{"type":"rate_limit_error","message":"{message}"}}}}"#
        ),
        Api::Gemini => format!(
            r#"{{"error":{{"code":429,"message":"{message}","status":"RESOURCE_EXHAUSTED"}}}}"#
        ),
    };
    let mut headers = vec![(RETRY_AFTER, spent.reset_secs.max(1).to_string())];
    headers.extend(policy_headers(spent));
    Denial {
        status: 429,
        headers,
        body,
    }
}

/// The OpenAI-style headers on an allowed call (the tightest token budget).
pub fn remaining_headers(
    limit: u64,
    remaining: u64,
    reset_secs: u64,
) -> [(&'static str, String); 3] {
    [
        ("x-ratelimit-limit-tokens", limit.to_string()),
        ("x-ratelimit-remaining-tokens", remaining.to_string()),
        ("x-ratelimit-reset-tokens", format!("{reset_secs}s")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent() -> Spent<'static> {
        Spent {
            name: "free-hourly",
            limit: 100,
            remaining: 3,
            window_secs: 3600,
            reset_secs: 42,
        }
    }

    #[test]
    fn each_provider_gets_its_own_rate_limit_error() {
        let parse =
            |api| serde_json::from_str::<serde_json::Value>(&denial(api, &spent()).body).unwrap();
        assert_eq!(
            parse(Api::OpenAiChat)["error"]["code"],
            "rate_limit_exceeded"
        );
        assert_eq!(
            parse(Api::AnthropicMessages)["error"]["type"],
            "rate_limit_error"
        );
        assert_eq!(parse(Api::Gemini)["error"]["status"], "RESOURCE_EXHAUSTED");
        let d = denial(Api::Gemini, &spent());
        assert_eq!(d.status, 429);
        assert_eq!(d.headers[0], ("retry-after", "42".to_string()));
        assert_eq!(d.headers[1].1, "\"free-hourly\";q=100;w=3600");
        assert_eq!(d.headers[2].1, "\"free-hourly\";r=3;t=42");
    }
}
