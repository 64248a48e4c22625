//! The envoy.service.ratelimit.v3 messages, encoded and decoded by hand.
//!
//! Only what the filter sends and reads: a protobuf runtime plus generated
//! types would cost more wasm than this whole module, and the wire format of
//! these few fields is stable.
//!
//! ```text
//! RateLimitRequest   { string domain = 1; repeated RateLimitDescriptor descriptors = 2; uint32 hits_addend = 3; }
//! RateLimitDescriptor{ repeated Entry entries = 1; google.protobuf.UInt64Value hits_addend = 3; }
//! Entry              { string key = 1; string value = 2; }      UInt64Value { uint64 value = 1; }
//! RateLimitResponse  { Code overall_code = 1; repeated DescriptorStatus statuses = 2; ... }
//! DescriptorStatus   { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!                      google.protobuf.Duration duration_until_reset = 4; }
//! RateLimit          { uint32 requests_per_unit = 1; Unit unit = 2; string name = 3; }
//! Duration           { int64 seconds = 1; int32 nanos = 2; }
//! ```

use crate::config_error::ConfigError;
use crate::token_bucket::Quota;

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// One descriptor: ordered (key, value) entries.
pub type Descriptor = Vec<(String, String)>;

/// The serialized `RateLimitRequest`: every descriptor costs `hits_addend`.
pub fn encode_request(domain: &str, descriptors: &[Descriptor], hits_addend: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_bytes(&mut out, 1, domain.as_bytes());
    for descriptor in descriptors {
        put_descriptor(&mut out, descriptor, None);
    }
    let hits = u32::try_from(hits_addend).unwrap_or(u32::MAX);
    if hits != 0 {
        put_tag(&mut out, 3, VARINT);
        put_varint(&mut out, u64::from(hits));
    }
    out
}

/// The serialized `RateLimitRequest` with a cost per descriptor (the
/// descriptor's own `hits_addend`, envoyproxy/ratelimit and Envoy 1.31+):
/// one call charges several counters by different amounts.
pub fn encode_weighted_request(domain: &str, descriptors: &[(Descriptor, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    put_bytes(&mut out, 1, domain.as_bytes());
    for (descriptor, hits) in descriptors {
        put_descriptor(&mut out, descriptor, Some(*hits));
    }
    out
}

fn put_descriptor(out: &mut Vec<u8>, descriptor: &Descriptor, hits: Option<u64>) {
    let mut d = Vec::with_capacity(32);
    for (key, value) in descriptor {
        let mut e = Vec::with_capacity(key.len() + value.len() + 4);
        put_bytes(&mut e, 1, key.as_bytes());
        put_bytes(&mut e, 2, value.as_bytes());
        put_bytes(&mut d, 1, &e);
    }
    if let Some(hits) = hits {
        let mut wrapper = Vec::with_capacity(11);
        put_tag(&mut wrapper, 1, VARINT);
        put_varint(&mut wrapper, hits);
        put_bytes(&mut d, 3, &wrapper);
    }
    put_bytes(out, 2, &d);
}

/// Checks the fields every pluginConfig that names a rate-limit service has:
/// its cluster, its domain and the call's timeout (1 ms to 1 min).
pub fn check_service(
    field: &str,
    cluster: &str,
    domain: &str,
    timeout_ms: u64,
) -> Result<(), ConfigError> {
    for (name, value) in [("cluster", cluster), ("domain", domain)] {
        if value.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                "must not be empty",
            ));
        }
    }
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{field}.timeout_ms"),
            "must be 1..=60000",
        ));
    }
    Ok(())
}

/// Why a call to the service gave no answer, for the `reason` label of the
/// service-error counters.
///
/// Envoy reports a call cut by its deadline as DEADLINE_EXCEEDED (4), once
/// the stream is up as UNAVAILABLE (14, from the 504 of its own timeout),
/// and once the service sent its response headers and stalled as INTERNAL
/// (13; measured in Envoy 1.40). The host's clock is coarse (timeouts
/// measured 12-24 ms for a 20 ms deadline) while a refused or reset
/// connection fails within a millisecond or two, so an UNAVAILABLE or
/// INTERNAL after half the deadline counts as a timeout. Only the label
/// depends on this; the failure mode applies either way.
pub fn failure_reason(grpc_status: u32, elapsed_ns: u64, timeout_ns: u64) -> &'static str {
    match grpc_status {
        4 => "timeout",
        13 | 14 if elapsed_ns >= timeout_ns / 2 => "timeout",
        14 => "unavailable",
        _ => "error",
    }
}

/// Every value of [`failure_reason`], plus `unavailable` (the host refused
/// the call) and `bad_response` (an answer that does not parse).
pub const FAILURE_REASONS: [&str; 4] = ["timeout", "unavailable", "error", "bad_response"];

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from(v: u64) -> Self {
        match v {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescriptorStatus {
    pub code: Option<Code>,
    /// `(requests_per_unit, unit)` of `current_limit`.
    pub limit: Option<(u32, u32)>,
    pub remaining: u32,
    /// `duration_until_reset`, whole seconds rounded up.
    pub reset_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub overall: Code,
    pub statuses: Vec<DescriptorStatus>,
}

impl DescriptorStatus {
    /// The quota this status reports, when it names its limit.
    pub fn quota(&self) -> Option<Quota> {
        let (per_unit, unit) = self.limit?;
        let window = unit_secs(unit);
        let reset = self.reset_secs.unwrap_or(window);
        Some(Quota {
            limit: u64::from(per_unit),
            remaining: u64::from(self.remaining),
            reset_secs: reset,
            retry_after_secs: reset.max(1),
            window_secs: window.max(1),
        })
    }
}

impl Response {
    /// The quota of the most restrictive status that names its limit, for
    /// the response headers.
    pub fn quota(&self) -> Option<Quota> {
        self.statuses
            .iter()
            .filter(|s| s.limit.is_some())
            .min_by_key(|s| s.remaining)?
            .quota()
    }
}

/// Seconds of a `RateLimitResponse.RateLimit.Unit`.
fn unit_secs(unit: u32) -> u64 {
    match unit {
        1 => 1,
        2 => 60,
        3 => 3600,
        4 => 86_400,
        5 => 30 * 86_400,
        6 => 365 * 86_400,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// Parses a `RateLimitResponse`; unknown fields are skipped.
pub fn decode_response(bytes: &[u8]) -> Result<Response, DecodeError> {
    let mut overall = Code::Unknown;
    let mut statuses = Vec::new();
    let mut r = Reader { bytes };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(v)) => overall = Code::from(v),
            (2, Value::Bytes(b)) => statuses.push(decode_status(b)?),
            _ => {}
        }
    }
    Ok(Response { overall, statuses })
}

fn decode_status(bytes: &[u8]) -> Result<DescriptorStatus, DecodeError> {
    let mut s = DescriptorStatus::default();
    let mut r = Reader { bytes };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(v)) => s.code = Some(Code::from(v)),
            (2, Value::Bytes(b)) => s.limit = Some(decode_limit(b)?),
            (3, Value::Varint(v)) => s.remaining = u32::try_from(v).unwrap_or(u32::MAX),
            (4, Value::Bytes(b)) => s.reset_secs = Some(decode_duration_secs(b)?),
            _ => {}
        }
    }
    Ok(s)
}

fn decode_limit(bytes: &[u8]) -> Result<(u32, u32), DecodeError> {
    let (mut per_unit, mut unit) = (0u32, 0u32);
    let mut r = Reader { bytes };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(v)) => per_unit = u32::try_from(v).unwrap_or(u32::MAX),
            (2, Value::Varint(v)) => unit = u32::try_from(v).unwrap_or(0),
            _ => {}
        }
    }
    Ok((per_unit, unit))
}

fn decode_duration_secs(bytes: &[u8]) -> Result<u64, DecodeError> {
    let (mut secs, mut nanos) = (0u64, 0u64);
    let mut r = Reader { bytes };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            // Negative durations (int64 as two's complement) read as 0.
            (1, Value::Varint(v)) => secs = if (v as i64) < 0 { 0 } else { v },
            (2, Value::Varint(v)) => nanos = if (v as i64) < 0 { 0 } else { v },
            _ => {}
        }
    }
    Ok(secs.saturating_add(u64::from(nanos > 0)))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or(DecodeError)?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next (field number, value), or None at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| DecodeError)?;
                Value::Bytes(self.take(n)?)
            }
            FIXED64 => {
                self.take(8)?;
                Value::Fixed
            }
            FIXED32 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(DecodeError),
        };
        Ok(Some((tag >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, &str)]) -> Descriptor {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_bytes_follow_the_wire_format() {
        // domain: "mcp" descriptors { entries { key: "org_id" value: "acme" } } hits_addend: 5,
        // byte by byte (tag = field << 3 | wire type; the real service in the
        // integration tests decodes the same bytes with prost).
        let bytes = encode_request("mcp", &[d(&[("org_id", "acme")])], 5);
        let expected: &[u8] = &[
            0x0a, 3, b'm', b'c', b'p', //
            0x12, 16, 0x0a, 14, //
            0x0a, 6, b'o', b'r', b'g', b'_', b'i', b'd', //
            0x12, 4, b'a', b'c', b'm', b'e', //
            0x18, 5,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn long_values_use_multi_byte_lengths_and_zero_hits_is_omitted() {
        let v = "x".repeat(300);
        let bytes = encode_request("", &[d(&[("k", &v)])], 0);
        // descriptor length 300 + entry overhead needs a two-byte varint.
        assert_eq!(&bytes[..3], &[0x0a, 0, 0x12]);
        assert!(bytes[3] & 0x80 != 0);
        assert!(!bytes.ends_with(&[0x18, 0]));
    }

    #[test]
    fn weighted_requests_carry_each_descriptors_own_hits() {
        // descriptors { entries { key: "b" value: "x" } hits_addend { value: 300 } }
        let bytes = encode_weighted_request("d", &[(d(&[("b", "x")]), 300)]);
        let expected: &[u8] = &[
            0x0a, 1, b'd', //
            0x12, 13, 0x0a, 6, 0x0a, 1, b'b', 0x12, 1, b'x', //
            0x1a, 3, 0x08, 0xac, 0x02,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn failure_reasons_tell_a_deadline_from_a_refusal() {
        let ms = 1_000_000;
        assert_eq!(failure_reason(4, 0, 20 * ms), "timeout");
        assert_eq!(failure_reason(14, 15 * ms, 20 * ms), "timeout");
        assert_eq!(failure_reason(14, ms, 20 * ms), "unavailable");
        assert_eq!(failure_reason(13, ms, 20 * ms), "error");
        assert_eq!(failure_reason(2, 30 * ms, 20 * ms), "error");
    }

    fn response_bytes() -> Vec<u8> {
        // overall_code: OVER_LIMIT, statuses { code: OVER_LIMIT current_limit
        // { requests_per_unit: 100 unit: MINUTE name: "x" } limit_remaining: 0
        // duration_until_reset { seconds: 41 nanos: 5 } }, plus an unknown
        // fixed32 field 9 and a second, looser status.
        let mut limit = Vec::new();
        put_tag(&mut limit, 1, VARINT);
        put_varint(&mut limit, 100);
        put_tag(&mut limit, 2, VARINT);
        put_varint(&mut limit, 2);
        put_bytes(&mut limit, 3, b"x");
        let mut dur = Vec::new();
        put_tag(&mut dur, 1, VARINT);
        put_varint(&mut dur, 41);
        put_tag(&mut dur, 2, VARINT);
        put_varint(&mut dur, 5);
        let mut status = Vec::new();
        put_tag(&mut status, 1, VARINT);
        put_varint(&mut status, 2);
        put_bytes(&mut status, 2, &limit);
        put_bytes(&mut status, 4, &dur);
        let mut loose = Vec::new();
        put_bytes(&mut loose, 2, &limit);
        put_tag(&mut loose, 3, VARINT);
        put_varint(&mut loose, 70);
        let mut out = Vec::new();
        put_tag(&mut out, 1, VARINT);
        put_varint(&mut out, 2);
        put_bytes(&mut out, 2, &loose);
        put_bytes(&mut out, 2, &status);
        put_tag(&mut out, 9, FIXED32);
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    #[test]
    fn decodes_the_response_and_picks_the_most_restrictive_status() {
        let r = decode_response(&response_bytes()).unwrap();
        assert_eq!(r.overall, Code::OverLimit);
        assert_eq!(r.statuses.len(), 2);
        let q = r.quota().unwrap();
        assert_eq!(
            (
                q.limit,
                q.remaining,
                q.reset_secs,
                q.retry_after_secs,
                q.window_secs
            ),
            (100, 0, 42, 42, 60)
        );
    }

    #[test]
    fn empty_response_is_unknown_without_quota() {
        let r = decode_response(b"").unwrap();
        assert_eq!(r.overall, Code::Unknown);
        assert_eq!(r.quota(), None);
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_or_partial_never_a_panic() {
        let full = response_bytes();
        for end in 0..full.len() {
            let _ = decode_response(&full[..end]);
        }
        for garbage in [&[0xff; 12][..], &[0x0b], &[0x12, 0x7f], &[0x08]] {
            assert_eq!(decode_response(garbage), Err(DecodeError), "{garbage:?}");
        }
    }
}
