//! Which requests get an access-log line.
//!
//! Errors and denials always do: status >= 400, no response at all, any
//! Envoy response flag (upstream reset, timeout, no route, downstream
//! disconnect, ...), or a JSON-RPC / tool error inside a 200 response. Successful requests are sampled at a configured rate,
//! deterministically per trace so that every sidecar on a debate's trace
//! keeps or drops its line together.

use mesh_core::jsonrpc::ResponseError;

/// The verdict, written to filter state for the access log's CEL filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// An error or a denial: logged whatever the rate.
    Always,
    /// A success that the sampler kept.
    Sampled,
    /// A success that the sampler dropped.
    Dropped,
}

impl Verdict {
    pub fn logged(self) -> bool {
        self != Verdict::Dropped
    }
}

/// What the sampler may key on, best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleKey<'a> {
    /// 32 hex digits of a W3C / B3 trace id.
    TraceId(&'a str),
    /// Any other per-request id (Envoy's x-request-id).
    RequestId(&'a [u8]),
    None,
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// HTTP status sent downstream; `None` or 0 when no response was sent.
    pub status: Option<u32>,
    /// Envoy's response-flag bitmask (`%RESPONSE_FLAGS%`).
    pub flags: u64,
    /// An MCP-level error inside the response (JSON-RPC error, tool error).
    pub rpc_error: Option<ResponseError>,
}

impl Outcome {
    pub fn is_error(&self) -> bool {
        self.rpc_error.is_some()
            || self.flags != 0
            || self.status.is_none_or(|s| s == 0 || s >= 400)
    }
}

/// The sampling decision for one request.
pub fn decide(outcome: Outcome, rate: f64, traced: bool, key: SampleKey) -> Verdict {
    if outcome.is_error() {
        return Verdict::Always;
    }
    if rate >= 1.0 || traced {
        return Verdict::Sampled;
    }
    if rate <= 0.0 {
        return Verdict::Dropped;
    }
    let draw = match key {
        SampleKey::TraceId(id) => trace_id_draw(id),
        SampleKey::RequestId(id) => Some(fnv1a(id) >> 1),
        SampleKey::None => None,
    };
    match draw {
        // Without any key there is nothing stable to hash: keep the line.
        None => Verdict::Sampled,
        Some(x) if (x as f64) < rate * TWO_POW_63 => Verdict::Sampled,
        Some(_) => Verdict::Dropped,
    }
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// OpenTelemetry's TraceIdRatioBased rule: the low 8 bytes of the trace id,
/// shifted right by one, compared with `rate * 2^63`. Tracers and this log
/// then agree on which traces are kept.
fn trace_id_draw(trace_id: &str) -> Option<u64> {
    let low = trace_id.get(16..32)?;
    u64::from_str_radix(low, 16).ok().map(|x| x >> 1)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Outcome = Outcome {
        status: Some(200),
        flags: 0,
        rpc_error: None,
    };

    #[test]
    fn errors_and_denials_are_always_logged() {
        for outcome in [
            Outcome {
                status: Some(401),
                flags: 0,
                rpc_error: None,
            },
            Outcome {
                status: Some(429),
                flags: 0,
                rpc_error: None,
            },
            Outcome {
                status: Some(503),
                flags: 0,
                rpc_error: None,
            },
            Outcome {
                status: Some(200),
                flags: 0x10,
                rpc_error: None,
            },
            Outcome {
                status: Some(0),
                flags: 0,
                rpc_error: None,
            },
            Outcome {
                status: None,
                flags: 0,
                rpc_error: None,
            },
            Outcome {
                status: Some(200),
                flags: 0,
                rpc_error: Some(ResponseError::ToolError),
            },
        ] {
            assert_eq!(
                decide(outcome, 0.0, false, SampleKey::None),
                Verdict::Always,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn successes_follow_the_rate() {
        assert_eq!(decide(OK, 1.0, false, SampleKey::None), Verdict::Sampled);
        assert_eq!(
            decide(OK, 0.0, false, SampleKey::TraceId(&"f".repeat(32))),
            Verdict::Dropped
        );
        assert_eq!(decide(OK, 0.0, true, SampleKey::None), Verdict::Sampled);
        assert_eq!(decide(OK, 0.5, false, SampleKey::None), Verdict::Sampled);
        assert!(
            decide(
                Outcome {
                    status: Some(302),
                    ..OK
                },
                0.0,
                false,
                SampleKey::None
            ) == Verdict::Dropped
        );
    }

    #[test]
    fn trace_id_rule_matches_opentelemetry() {
        // Low 8 bytes 0x0000..01 -> draw 0: kept at any rate > 0.
        let low = format!("{}{}", "a".repeat(16), "0000000000000001");
        assert_eq!(
            decide(OK, 1e-9, false, SampleKey::TraceId(&low)),
            Verdict::Sampled
        );
        // Low 8 bytes 0xffff..ff -> draw 2^63-1: dropped below rate 1.
        let high = format!("{}{}", "0".repeat(16), "f".repeat(16));
        assert_eq!(
            decide(OK, 0.999, false, SampleKey::TraceId(&high)),
            Verdict::Dropped
        );
        // Exactly half way: 0x8000..00 >> 1 = 2^62, kept iff rate > 0.5.
        let mid = format!("{}8{}", "0".repeat(16), "0".repeat(15));
        assert_eq!(
            decide(OK, 0.5, false, SampleKey::TraceId(&mid)),
            Verdict::Dropped
        );
        assert_eq!(
            decide(OK, 0.51, false, SampleKey::TraceId(&mid)),
            Verdict::Sampled
        );
    }

    #[test]
    fn rate_is_honoured_over_many_request_ids() {
        let kept = (0..10_000)
            .filter(|i| {
                let id = format!("5f1c0a6e-7d3b-4c1e-9a4f-{i:012}");
                decide(OK, 0.1, false, SampleKey::RequestId(id.as_bytes())).logged()
            })
            .count();
        assert!((800..1200).contains(&kept), "{kept}");
    }

    #[test]
    fn a_request_id_always_gets_the_same_verdict() {
        let id = SampleKey::RequestId(b"3ed6eb3b-ddce-4fdc-8862-ddb8f168d406");
        let first = decide(OK, 0.3, false, id);
        assert!((0..5).all(|_| decide(OK, 0.3, false, id) == first));
    }
}
