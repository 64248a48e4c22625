//! From a charge result to what happens to the request: the decision (for
//! counters and filter state), the 429 / 403 answer, the headers.

use crate::config::{FailMode, Mode, ResponseHeaders};
use crate::rules::Target;
use crate::store::{self, Charge, Failure, Options, SharedStore};
use mesh_core::error_body::{error_body, rpc_code};
use mesh_core::ratelimit_headers;
use mesh_core::token_bucket::{Outcome, Quota};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited,
    /// Over the limit in shadow mode: let through, counted.
    ShadowLimited,
    /// The limiter failed and `failure_mode: open` let the request through.
    FailOpen,
    /// The limiter failed and `failure_mode: closed` answered 429.
    FailClosed,
    /// No organization and `without_identity: deny`.
    NoIdentity,
}

impl Decision {
    pub const ALL: [Decision; 6] = [
        Decision::Allowed,
        Decision::Limited,
        Decision::ShadowLimited,
        Decision::FailOpen,
        Decision::FailClosed,
        Decision::NoIdentity,
    ];

    /// Metric label and `mcp_ratelimit_result` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Limited => "limited",
            Decision::ShadowLimited => "shadow_limited",
            Decision::FailOpen => "fail_open",
            Decision::FailClosed => "fail_closed",
            Decision::NoIdentity => "no_identity",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// True when the request is answered locally instead of forwarded.
    pub fn rejects(self) -> bool {
        matches!(
            self,
            Decision::Limited | Decision::FailClosed | Decision::NoIdentity
        )
    }
}

/// The outcome of the local bucket for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalResult {
    pub result: Result<Outcome, Failure>,
    /// The organization's own key could not be created: charged to overflow.
    pub overflowed: bool,
}

/// Charges `cost` to the target's bucket, or to its overflow bucket when
/// `max_buckets` keys exist already.
pub fn charge_local(
    store: &dyn SharedStore,
    target: &Target,
    cost: u64,
    now_ns: u64,
    max_cas_retries: u32,
    max_buckets: u32,
) -> LocalResult {
    let capped = Options {
        max_cas_retries,
        // Organization and anonymous-client keys count against the cap.
        max_buckets: target.capped.then_some(max_buckets),
    };
    let first = store::charge(store, &target.key, &target.limit, cost, now_ns, capped);
    let (charge, overflowed) = match first {
        Charge::Overflow => {
            let uncapped = Options {
                max_buckets: None,
                ..capped
            };
            let c = store::charge(
                store,
                &target.overflow_key,
                &target.limit,
                cost,
                now_ns,
                uncapped,
            );
            (c, true)
        }
        other => (other, false),
    };
    let result = match charge {
        Charge::Decided(outcome) => Ok(outcome),
        Charge::Failed(f) => Err(f),
        Charge::Overflow => Err(Failure::StoreError),
    };
    LocalResult { result, overflowed }
}

/// The decision for a limiter answer (`Some(allowed?)`), or `None` when the
/// limiter (shared data, the rate-limit service) failed.
pub fn decide(mode: Mode, failure_mode: FailMode, allowed: Option<bool>) -> Decision {
    match (allowed, mode, failure_mode) {
        (Some(true), _, _) => Decision::Allowed,
        (Some(false), Mode::Enforce, _) => Decision::Limited,
        (Some(false), Mode::Shadow, _) => Decision::ShadowLimited,
        // Shadow never rejects, even when failing closed.
        (None, Mode::Shadow, _) | (None, _, FailMode::Open) => Decision::FailOpen,
        (None, Mode::Enforce, FailMode::Closed) => Decision::FailClosed,
    }
}

/// A locally sent answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The answer for a rejecting decision; `id` is the JSON-RPC request id when
/// the body was read. `quota` is None when the limiter failed.
pub fn reply(
    decision: Decision,
    policy: &str,
    quota: Option<&Quota>,
    id: Option<&Value>,
) -> Option<LocalReply> {
    match decision {
        Decision::Limited | Decision::FailClosed => {
            let headers = match quota {
                Some(q) => ratelimit_headers::headers(policy, q, true),
                // Nothing known about the bucket: tell the client to back off.
                None => vec![(ratelimit_headers::RETRY_AFTER, "1".to_string())],
            };
            Some(LocalReply {
                status: 429,
                headers,
                body: error_body(
                    id,
                    rpc_code::RATE_LIMITED,
                    "rate_limited",
                    "rate limit exceeded for this organization",
                ),
            })
        }
        Decision::NoIdentity => Some(LocalReply {
            status: 403,
            headers: Vec::new(),
            body: error_body(
                id,
                rpc_code::FORBIDDEN,
                "identity_required",
                "requests must carry an organization identity",
            ),
        }),
        _ => None,
    }
}

/// Headers added to a forwarded response (`response_headers: always`).
pub fn forwarded_headers(
    setting: ResponseHeaders,
    decision: Decision,
    policy: &str,
    quota: Option<&Quota>,
) -> Vec<(&'static str, String)> {
    match (setting, decision, quota) {
        (ResponseHeaders::Always, Decision::Allowed | Decision::ShadowLimited, Some(q)) => {
            ratelimit_headers::headers(policy, q, false)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Target;
    use crate::store::model::Model;
    use mesh_core::token_bucket::Limit;
    use serde_json::json;

    #[test]
    fn decisions() {
        use Decision::*;
        let e = None;
        assert_eq!(decide(Mode::Enforce, FailMode::Open, Some(true)), Allowed);
        assert_eq!(decide(Mode::Enforce, FailMode::Open, Some(false)), Limited);
        assert_eq!(
            decide(Mode::Shadow, FailMode::Open, Some(false)),
            ShadowLimited
        );
        assert_eq!(decide(Mode::Enforce, FailMode::Open, e), FailOpen);
        assert_eq!(decide(Mode::Enforce, FailMode::Closed, e), FailClosed);
        assert_eq!(decide(Mode::Shadow, FailMode::Closed, e), FailOpen);
        assert!(Limited.rejects() && FailClosed.rejects() && NoIdentity.rejects());
        assert!(!ShadowLimited.rejects() && !FailOpen.rejects());
        for (i, d) in Decision::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
    }

    fn quota() -> Quota {
        Quota {
            limit: 10,
            remaining: 0,
            reset_secs: 60,
            retry_after_secs: 6,
            window_secs: 60,
        }
    }

    #[test]
    fn limited_reply_is_429_with_headers_and_jsonrpc_id() {
        let r = reply(
            Decision::Limited,
            "free",
            Some(&quota()),
            Some(&json!("abc")),
        )
        .unwrap();
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("retry-after", "6".into())));
        assert!(r
            .headers
            .contains(&("ratelimit", "\"free\";r=0;t=60".into())));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], "abc");
        assert_eq!(body["error"]["code"], -32029);
        let plain = reply(Decision::Limited, "free", Some(&quota()), None).unwrap();
        let body: Value = serde_json::from_str(&plain.body).unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }

    #[test]
    fn fail_closed_without_quota_still_says_retry_after() {
        let r = reply(Decision::FailClosed, "free", None, None).unwrap();
        assert_eq!(r.headers, vec![("retry-after", "1".to_string())]);
    }

    #[test]
    fn no_identity_is_403_and_passing_decisions_have_no_reply() {
        assert_eq!(
            reply(Decision::NoIdentity, "x", None, None).unwrap().status,
            403
        );
        for d in [
            Decision::Allowed,
            Decision::ShadowLimited,
            Decision::FailOpen,
        ] {
            assert_eq!(reply(d, "x", Some(&quota()), None), None);
        }
    }

    #[test]
    fn forwarded_headers_only_when_asked() {
        let q = quota();
        assert!(
            forwarded_headers(ResponseHeaders::Limited, Decision::Allowed, "p", Some(&q))
                .is_empty()
        );
        let h = forwarded_headers(ResponseHeaders::Always, Decision::Allowed, "p", Some(&q));
        assert_eq!(h.len(), 5);
        assert!(
            forwarded_headers(ResponseHeaders::Always, Decision::FailOpen, "p", None).is_empty()
        );
    }

    #[test]
    fn overflow_bucket_takes_orgs_beyond_the_cap() {
        let m = Model::default();
        store::ensure_registry(&m);
        let target = |org: &str| Target {
            key: format!("orl1|default|{org}"),
            overflow_key: "orl1o|default|free".into(),
            limit: Limit::new(1, 3_600_000_000_000, 2),
            policy: "free".into(),
            class: "default".into(),
            org: Some(org.into()),
            capped: true,
        };
        let now = 1_000_000_000_000;
        let first = charge_local(&m, &target("a"), 1, now, 8, 1);
        assert!(!first.overflowed && first.result.unwrap().allowed);
        // b and c share the overflow bucket of burst 2.
        let b = charge_local(&m, &target("b"), 1, now, 8, 1);
        let c = charge_local(&m, &target("c"), 1, now, 8, 1);
        let d = charge_local(&m, &target("d"), 1, now, 8, 1);
        assert!(b.overflowed && b.result.unwrap().allowed);
        assert!(c.result.unwrap().allowed);
        assert!(!d.result.unwrap().allowed);
        // The shared anonymous bucket (from: none) is never capped; a bucket
        // per anonymous client is, like an organization's.
        let anon = Target {
            org: None,
            key: "orl1a|default".into(),
            capped: false,
            ..target("x")
        };
        assert!(!charge_local(&m, &anon, 1, now, 8, 1).overflowed);
        let client = Target {
            org: None,
            key: "orl1a|default|10.0.0.9".into(),
            overflow_key: "orl1o|default|anonymous".into(),
            ..target("x")
        };
        assert!(charge_local(&m, &client, 1, now, 8, 1).overflowed);
    }
}
