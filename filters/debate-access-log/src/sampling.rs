//! Which requests get an access-log line.
//!
//! Errors and denials always do: status >= 400, no response at all, any
//! Envoy response flag (upstream reset, timeout, no route, downstream
//! disconnect, ...), or a JSON-RPC / tool error inside a 200 response.
//! Successful requests are sampled at a configured rate, deterministically
//! per trace so that every sidecar on a debate's trace keeps or drops its line
//! together.
//!
//! The draw is a keyed hash (SipHash-2-4) of the trace id under a mesh-wide
//! salt from config, not the trace id's own bits (OpenTelemetry's
//! TraceIdRatioBased rule): clients choose their trace ids, and with the
//! plain rule a `traceparent` ending in `ffffffffffffffff` is never logged at
//! any rate below 1 (issue 12). Sidecars sharing the salt still agree.

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

/// The sampling decision for one request. `salt`: the mesh-wide sampling key.
pub fn decide(outcome: Outcome, rate: f64, traced: bool, key: SampleKey, salt: &Salt) -> Verdict {
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
        SampleKey::TraceId(id) => Some(salt.draw(id.as_bytes())),
        SampleKey::RequestId(id) => Some(salt.draw(id)),
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

/// The SipHash key derived from the configured salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Salt {
    k0: u64,
    k1: u64,
}

impl Salt {
    pub fn new(salt: &str) -> Self {
        Self {
            k0: fnv1a(&[salt.as_bytes(), b"\x00"].concat()),
            k1: fnv1a(&[salt.as_bytes(), b"\x01"].concat()),
        }
    }

    /// A 63-bit draw for `id`, uniform for anyone who lacks the salt.
    fn draw(&self, id: &[u8]) -> u64 {
        siphash24(self.k0, self.k1, id) >> 1
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SipHash-2-4 (Aumasson and Bernstein), the keyed hash of Rust's old
/// `SipHasher`; written out because std's is deprecated and not promised
/// stable, and every sidecar must draw the same value.
fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        for (slot, &b) in word.iter_mut().zip(chunk) {
            *slot = b;
        }
        let m = u64::from_le_bytes(word);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    for (slot, &b) in last.iter_mut().zip(chunks.remainder()) {
        *slot = b;
    }
    last[7] = (data.len() & 0xff) as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: Salt = Salt {
        k0: 0x1234,
        k1: 0x5678,
    };

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
                decide(outcome, 0.0, false, SampleKey::None, &SALT),
                Verdict::Always,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn successes_follow_the_rate() {
        assert_eq!(
            decide(OK, 1.0, false, SampleKey::None, &SALT),
            Verdict::Sampled
        );
        assert_eq!(
            decide(OK, 0.0, false, SampleKey::TraceId(&"f".repeat(32)), &SALT),
            Verdict::Dropped
        );
        assert_eq!(
            decide(OK, 0.0, true, SampleKey::None, &SALT),
            Verdict::Sampled
        );
        assert_eq!(
            decide(OK, 0.5, false, SampleKey::None, &SALT),
            Verdict::Sampled
        );
        assert!(
            decide(
                Outcome {
                    status: Some(302),
                    ..OK
                },
                0.0,
                false,
                SampleKey::None,
                &SALT
            ) == Verdict::Dropped
        );
    }

    #[test]
    fn siphash24_matches_the_reference_vectors() {
        // The paper's key 00..0f and messages 00, 00 01, ... (vectors.h).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash24(k0, k1, b""), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    /// A client picking trace ids cannot keep itself out of the log: the
    /// ids OpenTelemetry's rule would always drop are kept at the rate.
    #[test]
    fn ids_chosen_to_be_dropped_are_kept_at_the_rate() {
        let kept = (0..10_000u32)
            .filter(|i| {
                let id = format!("{i:016x}ffffffffffffffff");
                decide(OK, 0.1, false, SampleKey::TraceId(&id), &SALT).logged()
            })
            .count();
        assert!((800..1200).contains(&kept), "{kept}");
    }

    #[test]
    fn another_salt_draws_otherwise_and_one_salt_always_the_same() {
        let ids: Vec<String> = (0..64).map(|i| format!("{i:032x}")).collect();
        let verdicts = |salt: &Salt| -> Vec<bool> {
            ids.iter()
                .map(|id| decide(OK, 0.5, false, SampleKey::TraceId(id), salt).logged())
                .collect()
        };
        let mesh = Salt::new("mesh-salt-of-at-least-16");
        assert_eq!(
            verdicts(&mesh),
            verdicts(&Salt::new("mesh-salt-of-at-least-16"))
        );
        assert_ne!(
            verdicts(&mesh),
            verdicts(&Salt::new("other-salt-of-at-least-16"))
        );
    }

    #[test]
    fn rate_is_honoured_over_many_request_ids() {
        let kept = (0..10_000)
            .filter(|i| {
                let id = format!("5f1c0a6e-7d3b-4c1e-9a4f-{i:012}");
                decide(OK, 0.1, false, SampleKey::RequestId(id.as_bytes()), &SALT).logged()
            })
            .count();
        assert!((800..1200).contains(&kept), "{kept}");
    }

    #[test]
    fn a_request_id_always_gets_the_same_verdict() {
        let id = SampleKey::RequestId(b"3ed6eb3b-ddce-4fdc-8862-ddb8f168d406");
        let first = decide(OK, 0.3, false, id, &SALT);
        assert!((0..5).all(|_| decide(OK, 0.3, false, id, &SALT) == first));
    }
}
