//! Rate-limit response headers, from a [`Quota`].
//!
//! Three families, because clients read different ones:
//! - `Retry-After` (RFC 9110), whole seconds, at least 1, on 429 only;
//! - the IETF httpapi draft's structured fields (draft-ietf-httpapi-ratelimit-headers-08
//!   and later): `RateLimit-Policy: "free";q=60;w=60` (quota units per window)
//!   and `RateLimit: "free";r=17;t=42` (remaining units, seconds to reset);
//! - the widely used `X-RateLimit-Limit` / `-Remaining` / `-Reset` (seconds),
//!   as Envoy's local_ratelimit and ratelimit filters send them.
//!
//! For a token bucket, `q` is the burst and `w` the seconds the burst takes to
//! refill, so `r <= q` always holds; "reset" is the time until the bucket is
//! full again.

use crate::token_bucket::Quota;

pub const RETRY_AFTER: &str = "retry-after";
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
pub const RATELIMIT: &str = "ratelimit";
pub const X_RATELIMIT_LIMIT: &str = "x-ratelimit-limit";
pub const X_RATELIMIT_REMAINING: &str = "x-ratelimit-remaining";
pub const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";

/// Every header name this module may write (for removing upstream copies).
pub const ALL: [&str; 6] = [
    RETRY_AFTER,
    RATELIMIT_POLICY,
    RATELIMIT,
    X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
];

/// The headers for one decision. `policy` names the quota policy (the plan);
/// `limited` adds `Retry-After`.
pub fn headers(policy: &str, quota: &Quota, limited: bool) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(6);
    if limited {
        out.push((RETRY_AFTER, quota.retry_after_secs.max(1).to_string()));
    }
    out.extend(structured(policy, quota));
    out.push((X_RATELIMIT_LIMIT, quota.limit.to_string()));
    out.push((X_RATELIMIT_REMAINING, quota.remaining.to_string()));
    out.push((X_RATELIMIT_RESET, quota.reset_secs.to_string()));
    out
}

/// The IETF draft's pair alone: `RateLimit-Policy` and `RateLimit`.
pub fn structured(policy: &str, quota: &Quota) -> [(&'static str, String); 2] {
    let name = sf_string(policy);
    [
        (
            RATELIMIT_POLICY,
            format!("{name};q={};w={}", quota.limit, quota.window_secs.max(1)),
        ),
        (
            RATELIMIT,
            format!("{name};r={};t={}", quota.remaining, quota.reset_secs),
        ),
    ]
}

/// An RFC 8941 sf-string: printable ASCII with `"` and `\` escaped; anything
/// else becomes `_` so a policy name can never break the header.
pub fn sf_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(64) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota {
            limit: 60,
            remaining: 17,
            reset_secs: 43,
            retry_after_secs: 2,
            window_secs: 60,
        }
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn limited_response_carries_every_header() {
        let h = headers("free", &quota(), true);
        assert_eq!(get(&h, RETRY_AFTER), Some("2"));
        assert_eq!(get(&h, RATELIMIT_POLICY), Some("\"free\";q=60;w=60"));
        assert_eq!(get(&h, RATELIMIT), Some("\"free\";r=17;t=43"));
        assert_eq!(get(&h, X_RATELIMIT_LIMIT), Some("60"));
        assert_eq!(get(&h, X_RATELIMIT_REMAINING), Some("17"));
        assert_eq!(get(&h, X_RATELIMIT_RESET), Some("43"));
        assert_eq!(h.len(), ALL.len());
    }

    #[test]
    fn allowed_response_has_no_retry_after() {
        let h = headers("free", &quota(), false);
        assert_eq!(get(&h, RETRY_AFTER), None);
        assert_eq!(h.len(), ALL.len() - 1);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let q = Quota {
            retry_after_secs: 0,
            window_secs: 0,
            ..quota()
        };
        let h = headers("p", &q, true);
        assert_eq!(get(&h, RETRY_AFTER), Some("1"));
        assert_eq!(get(&h, RATELIMIT_POLICY), Some("\"p\";q=60;w=1"));
    }

    #[test]
    fn policy_names_are_escaped() {
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("é\n\u{7f}"), "\"___\"");
        assert_eq!(sf_string(&"x".repeat(100)).len(), 66);
    }
}
