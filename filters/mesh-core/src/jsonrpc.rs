//! Facts about an MCP (JSON-RPC 2.0) request body: method, tool, id, and any
//! value addressed by a JSON pointer (the debate id, for example).
//!
//! Bodies arrive in chunks; the filters collect at most a configured cap of
//! bytes and call [`parse`] once. A body that is not JSON-RPC, is truncated or
//! is over the cap simply yields no facts: it never fails the request.

use serde_json::Value;

/// Longest value we keep for any single fact; clients control these strings.
pub const MAX_FACT_LEN: usize = 256;

/// What one JSON-RPC message (or the first message of a batch) says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestFacts {
    /// `method`, e.g. `tools/call`.
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
    /// The JSON-RPC `id` as it appeared (number or string), re-serialized.
    pub id: Option<Value>,
    /// Number of messages when the body is a batch (array), else 1.
    pub batch_len: usize,
    /// The parsed first message, for pointer lookups.
    message: Option<Value>,
}

impl RequestFacts {
    /// The string (or number) at `pointer` (RFC 6901) in the first message,
    /// capped to [`MAX_FACT_LEN`].
    pub fn pointer(&self, pointer: &str) -> Option<String> {
        let value = self.message.as_ref()?.pointer(pointer)?;
        scalar_to_string(value)
    }

    /// The `id` rendered as JSON text (`7`, `"abc"`), for logs.
    pub fn id_text(&self) -> Option<String> {
        self.id.as_ref().map(|v| cap(v.to_string()))
    }
}

/// Parses a complete (or capped) request body. Returns `None` unless the body
/// is a JSON object or a non-empty array of objects with `"jsonrpc"` or
/// `"method"`.
pub fn parse(body: &[u8]) -> Option<RequestFacts> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let (first, batch_len) = match value {
        Value::Array(mut items) => {
            let len = items.len();
            if len == 0 {
                return None;
            }
            (items.swap_remove(0), len)
        }
        other => (other, 1),
    };
    let obj = first.as_object()?;
    if !obj.contains_key("jsonrpc") && !obj.contains_key("method") {
        return None;
    }
    let method = obj.get("method").and_then(Value::as_str).map(capped);
    let tool = if method.as_deref() == Some("tools/call") {
        obj.get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(capped)
    } else {
        None
    };
    let id = obj
        .get("id")
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    Some(RequestFacts {
        method,
        tool,
        id,
        batch_len,
        message: Some(first),
    })
}

/// True for requests whose body may be JSON-RPC: a POST with a JSON content type
/// (or none at all, which some MCP clients send).
pub fn is_jsonrpc_post(method: &str, content_type: Option<&str>) -> bool {
    method.eq_ignore_ascii_case("POST")
        && content_type.is_none_or(|ct| {
            let ct = ct.trim_start().to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        })
}

fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(capped(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn capped(s: &str) -> String {
    cap(s.to_string())
}

fn cap(mut s: String) -> String {
    if s.len() > MAX_FACT_LEN {
        let mut end = MAX_FACT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"submit_argument","arguments":{"debate_id":"d-42","text":"hi"}}}"#;

    #[test]
    fn tools_call_facts() {
        let f = parse(CALL.as_bytes()).unwrap();
        assert_eq!(f.method.as_deref(), Some("tools/call"));
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
        assert_eq!(f.id_text().as_deref(), Some("7"));
        assert_eq!(
            f.pointer("/params/arguments/debate_id").as_deref(),
            Some("d-42")
        );
        assert_eq!(f.pointer("/params/arguments/missing"), None);
        assert_eq!(f.batch_len, 1);
    }

    #[test]
    fn string_id_keeps_quotes_in_text() {
        let f = parse(br#"{"jsonrpc":"2.0","id":"a\"b","method":"ping"}"#).unwrap();
        assert_eq!(f.id_text().as_deref(), Some(r#""a\"b""#));
        assert_eq!(f.tool, None);
    }

    #[test]
    fn batch_uses_first_message() {
        let body = format!("[{CALL},{{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":8}}]");
        let f = parse(body.as_bytes()).unwrap();
        assert_eq!(f.batch_len, 2);
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
    }

    #[test]
    fn not_jsonrpc_yields_nothing() {
        for body in [
            &b""[..],
            b"[]",
            b"{\"a\":1}",
            b"{\"jsonrpc\":",
            b"\xff\xfe",
            b"42",
        ] {
            assert_eq!(parse(body), None, "{body:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_body_is_safe() {
        for end in 0..CALL.len() {
            let _ = parse(&CALL.as_bytes()[..end]);
        }
    }

    #[test]
    fn long_values_are_capped_on_char_boundary() {
        let name = "é".repeat(400);
        let body =
            format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"{name}"}}}}"#);
        let tool = parse(body.as_bytes()).unwrap().tool.unwrap();
        assert!(tool.len() <= MAX_FACT_LEN && tool.len() >= MAX_FACT_LEN - 1);
    }

    #[test]
    fn object_ids_are_ignored() {
        let f = parse(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap();
        assert_eq!(f.id, None);
    }

    #[test]
    fn jsonrpc_post_detection() {
        assert!(is_jsonrpc_post("POST", Some("application/json")));
        assert!(is_jsonrpc_post(
            "post",
            Some("Application/JSON; charset=utf-8")
        ));
        assert!(is_jsonrpc_post("POST", None));
        assert!(!is_jsonrpc_post("GET", Some("application/json")));
        assert!(!is_jsonrpc_post("POST", Some("multipart/form-data")));
    }
}
