//! Trace and span ids from the propagation headers a mesh sees: W3C
//! `traceparent`, B3 single (`b3`) and B3 multi (`x-b3-traceid`,
//! `x-b3-spanid`, `x-b3-sampled`, `x-b3-flags`), tried in that order.
//!
//! Only well-formed ids are returned, normalized to lowercase hex (B3's
//! 64-bit trace ids left-padded to 128 bits), so a logged id is always
//! something a tracing backend can look up, never an arbitrary client string.

/// Headers read, in the order they are tried.
pub const TRACEPARENT: &str = "traceparent";
pub const B3: &str = "b3";
pub const B3_TRACE_ID: &str = "x-b3-traceid";
pub const B3_SPAN_ID: &str = "x-b3-spanid";
pub const B3_SAMPLED: &str = "x-b3-sampled";
pub const B3_FLAGS: &str = "x-b3-flags";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: the caller's span.
    pub span_id: Option<String>,
    /// The caller decided to record this trace.
    pub sampled: bool,
}

/// The trace context of a request; `header` returns a request header's value.
pub fn extract(header: &mut dyn FnMut(&str) -> Option<Vec<u8>>) -> Option<TraceContext> {
    if let Some(tc) = header(TRACEPARENT).and_then(|v| parse_traceparent(&v)) {
        return Some(tc);
    }
    if let Some(tc) = header(B3).and_then(|v| parse_b3_single(&v)) {
        return Some(tc);
    }
    let trace_id = header(B3_TRACE_ID).and_then(|v| b3_trace_id(&v))?;
    let span_id = header(B3_SPAN_ID).and_then(|v| hex_id(&v, 16));
    let sampled = header(B3_SAMPLED).is_some_and(|v| matches!(v.as_slice(), b"1" | b"true"))
        || header(B3_FLAGS).is_some_and(|v| v == b"1");
    Some(TraceContext {
        trace_id,
        span_id,
        sampled,
    })
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; later versions
/// may append `-...` fields, version `ff` is invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceContext> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || !is_hex(version) || version.eq_ignore_ascii_case("ff") {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16)
        .ok()
        .filter(|_| flags.len() == 2)?;
    Some(TraceContext {
        trace_id: hex_id(trace_id.as_bytes(), 32)?,
        span_id: Some(hex_id(span_id.as_bytes(), 16)?),
        sampled: flags & 1 == 1,
    })
}

/// `b3: {trace id}-{span id}[-{sampling}[-{parent span id}]]`; a bare
/// sampling decision (`0`, `1`, `d`) carries no ids.
pub fn parse_b3_single(value: &[u8]) -> Option<TraceContext> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let trace_id = b3_trace_id(parts.next()?.as_bytes())?;
    let span_id = Some(hex_id(parts.next()?.as_bytes(), 16)?);
    let sampled = matches!(parts.next(), Some("1" | "d"));
    Some(TraceContext {
        trace_id,
        span_id,
        sampled,
    })
}

/// B3 trace ids are 16 or 32 hex digits; 16 are left-padded to 32.
fn b3_trace_id(value: &[u8]) -> Option<String> {
    match value.len() {
        16 => hex_id(value, 16).map(|id| format!("{:0>32}", id)),
        _ => hex_id(value, 32),
    }
}

/// `len` hex digits, not all zero (an invalid id in both W3C and B3), lowercased.
fn hex_id(value: &[u8], len: usize) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    if text.len() != len || !is_hex(text) || text.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(text.to_ascii_lowercase())
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn from(headers: &[(&str, &str)]) -> Option<TraceContext> {
        let map: HashMap<_, _> = headers.iter().copied().collect();
        extract(&mut |name| map.get(name).map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn w3c_traceparent() {
        let tc = from(&[(TRACEPARENT, &format!("00-{TRACE}-{SPAN}-01"))]).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        assert_eq!(tc.span_id.as_deref(), Some(SPAN));
        assert!(tc.sampled);
        let tc = from(&[(TRACEPARENT, &format!("00-{TRACE}-{SPAN}-00"))]).unwrap();
        assert!(!tc.sampled);
    }

    #[test]
    fn future_versions_may_append_fields() {
        let tc = parse_traceparent(format!("01-{TRACE}-{SPAN}-03-extra").as_bytes()).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        assert!(tc.sampled);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        let zeros = "0".repeat(32);
        for bad in [
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{zeros}-{SPAN}-01"),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00-{}-{SPAN}-01", &TRACE[..31]),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{TRACE}-{SPAN}-zz"),
            "00-\"},\"org_id\":\"admin-x-01".to_string(),
            String::new(),
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_traceparent(b"\xff\xfe"), None);
    }

    #[test]
    fn b3_single_and_multi() {
        let tc = from(&[(B3, &format!("{TRACE}-{SPAN}-1"))]).unwrap();
        assert_eq!((tc.trace_id.as_str(), tc.sampled), (TRACE, true));
        let tc = from(&[(B3, "A3CE929D0E0E4736-00F067AA0BA902B7")]).unwrap();
        assert_eq!(tc.trace_id, "0000000000000000a3ce929d0e0e4736");
        assert_eq!(tc.span_id.as_deref(), Some(SPAN));
        assert!(!tc.sampled);
        assert_eq!(parse_b3_single(b"1"), None);

        let tc = from(&[(B3_TRACE_ID, TRACE), (B3_SPAN_ID, SPAN), (B3_SAMPLED, "1")]).unwrap();
        assert_eq!(tc.span_id.as_deref(), Some(SPAN));
        assert!(tc.sampled);
        let tc = from(&[(B3_TRACE_ID, TRACE), (B3_FLAGS, "1")]).unwrap();
        assert!(tc.sampled && tc.span_id.is_none());
    }

    #[test]
    fn traceparent_wins_and_garbage_falls_through() {
        let tc = from(&[(TRACEPARENT, "garbage"), (B3, "nope"), (B3_TRACE_ID, TRACE)]).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        assert_eq!(from(&[]), None);
        assert_eq!(from(&[(B3_TRACE_ID, "xyz")]), None);
    }
}
