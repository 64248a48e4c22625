//! Facts about an MCP (JSON-RPC 2.0) request body: method, tool, id, and any
//! value addressed by a JSON pointer (the debate id, for example).
//!
//! Bodies arrive in chunks; the filters collect at most a configured cap of
//! bytes (see [`crate::body_prefix`]) and call [`parse`] (whole body) or
//! [`parse_prefix`] (a body cut at the cap) once. A body that is not JSON-RPC
//! or is malformed simply yields no facts: it never fails the request.

use serde_json::Value;

/// Longest value we keep for any single fact; clients control these strings.
pub const MAX_FACT_LEN: usize = 256;

/// Deepest nesting [`parse_prefix`] repairs; serde_json refuses deeper input anyway.
const MAX_DEPTH: usize = 128;

/// What one JSON-RPC message of a body says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageFacts {
    /// `method`, e.g. `tools/call`; `None` for a response sent by the client.
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
    /// The JSON-RPC `id` (number or string); `None` for notifications.
    pub id: Option<Value>,
}

/// What a request body says: the first JSON-RPC message's facts at the top
/// (what most callers need), and every message of a batch in `messages`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestFacts {
    /// `method` of the first message, e.g. `tools/call`.
    pub method: Option<String>,
    /// `params.name` of the first message when it is a `tools/call`.
    pub tool: Option<String>,
    /// The first message's JSON-RPC `id` as it appeared (number or string).
    pub id: Option<Value>,
    /// Number of elements when the body is a batch (array), else 1.
    pub batch_len: usize,
    /// Every JSON-RPC message, in body order (one unless a batch).
    pub messages: Vec<MessageFacts>,
    /// True when the facts come from a body cut at the cap: later messages or
    /// members may be missing.
    pub truncated: bool,
    /// The parsed JSON-RPC messages, for pointer lookups.
    values: Vec<Value>,
}

impl RequestFacts {
    /// The string (or number) at `pointer` (RFC 6901) in the first message
    /// that has one, capped to [`MAX_FACT_LEN`].
    pub fn pointer(&self, pointer: &str) -> Option<String> {
        self.values
            .iter()
            .find_map(|message| message.pointer(pointer).and_then(scalar_to_string))
    }

    /// The `id` rendered as JSON text (`7`, `"abc"`), for logs.
    pub fn id_text(&self) -> Option<String> {
        self.id.as_ref().map(id_to_text)
    }
}

/// The JSON text of an `id` (`7`, `"abc"`), capped to [`MAX_FACT_LEN`].
pub fn id_to_text(id: &Value) -> String {
    cap(id.to_string())
}

/// Parses a complete request body. Returns `None` unless the body is a JSON
/// object or an array holding at least one object with `"jsonrpc"` or `"method"`.
pub fn parse(body: &[u8]) -> Option<RequestFacts> {
    let value: Value = serde_json::from_slice(body).ok()?;
    facts_of(value)
}

/// Parses a body that may have been cut anywhere (at the filter's cap). A
/// complete body parses as with [`parse`]; a cut one is closed after its last
/// complete member or element (`{"id":7,"method":"tools/call","params":{"na`
/// reads as `{"id":7,"method":"tools/call","params":{}}`) and comes back with
/// `truncated` set. The method, id and tool name that MCP clients send before
/// the (possibly large) arguments survive the cut.
pub fn parse_prefix(body: &[u8]) -> Option<RequestFacts> {
    if let Some(facts) = parse(body) {
        return Some(facts);
    }
    let repaired = close_truncated(body)?;
    let mut facts = parse(&repaired)?;
    facts.truncated = true;
    Some(facts)
}

/// What a JSON-RPC response says went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// A JSON-RPC `error` with this `code` (-32602 invalid params, ...).
    Code(i64),
    /// An `error` without an integer code.
    Unspecified,
    /// An MCP tool result with `"isError": true` (the call ran and failed).
    ToolError,
}

/// The first error in a JSON-RPC response or batch of responses (a body cut
/// anywhere is read as far as it goes, like [`parse_prefix`]).
pub fn response_error(body: &[u8]) -> Option<ResponseError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => serde_json::from_slice(&close_truncated(body)?).ok()?,
    };
    match &value {
        Value::Array(items) => items.iter().find_map(message_error),
        message => message_error(message),
    }
}

fn message_error(message: &Value) -> Option<ResponseError> {
    if let Some(error) = message.get("error").filter(|e| !e.is_null()) {
        return Some(
            error
                .get("code")
                .and_then(Value::as_i64)
                .map_or(ResponseError::Unspecified, ResponseError::Code),
        );
    }
    let is_error = message.pointer("/result/isError").and_then(Value::as_bool);
    (is_error == Some(true)).then_some(ResponseError::ToolError)
}

fn facts_of(value: Value) -> Option<RequestFacts> {
    let (items, batch_len) = match value {
        Value::Array(items) => {
            let len = items.len();
            (items, len)
        }
        other => (vec![other], 1),
    };
    let values: Vec<Value> = items.into_iter().filter(is_jsonrpc_message).collect();
    let messages: Vec<MessageFacts> = values.iter().map(message_facts).collect();
    let first = messages.first()?.clone();
    Some(RequestFacts {
        method: first.method,
        tool: first.tool,
        id: first.id,
        batch_len,
        messages,
        truncated: false,
        values,
    })
}

fn is_jsonrpc_message(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|obj| obj.contains_key("jsonrpc") || obj.contains_key("method"))
}

fn message_facts(message: &Value) -> MessageFacts {
    let method = message.get("method").and_then(Value::as_str).map(capped);
    let tool = if method.as_deref() == Some("tools/call") {
        message
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(capped)
    } else {
        None
    };
    let id = message
        .get("id")
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    MessageFacts { method, tool, id }
}

/// Closes a JSON text cut at an arbitrary byte: keeps everything up to the
/// last point where a member or element was complete (before a `,`, after an
/// opening or closing bracket) and appends the closing brackets still open
/// there. `None` when the text is not JSON-shaped enough to repair.
fn close_truncated(body: &[u8]) -> Option<Vec<u8>> {
    let mut open: Vec<u8> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    // (byte offset to cut at, open brackets kept at that point)
    let mut cut: Option<(usize, usize)> = None;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                if open.len() >= MAX_DEPTH {
                    return None;
                }
                open.push(if b == b'{' { b'}' } else { b']' });
                cut = Some((i + 1, open.len()));
            }
            b'}' | b']' => {
                if open.pop() != Some(b) {
                    return None;
                }
                if open.is_empty() {
                    // A complete top-level value: nothing to repair.
                    return None;
                }
                cut = Some((i + 1, open.len()));
            }
            b',' if !open.is_empty() => cut = Some((i, open.len())),
            _ => {}
        }
    }
    let (at, depth) = cut?;
    // Brackets below `depth` were never closed after the cut (closing one would
    // have moved the cut), so they are still the first `depth` entries of `open`.
    let mut repaired = body.get(..at)?.to_vec();
    repaired.extend(open.get(..depth)?.iter().rev());
    Some(repaired)
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
    fn batch_first_message_on_top_every_message_listed() {
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

    #[test]
    fn batch_lists_every_message_and_pointer_searches_them() {
        let body = br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"vote","arguments":{"debate_id":"d-9"}}},
            {"jsonrpc":"2.0","id":3,"result":{}}, 42]"#;
        let f = parse(body).unwrap();
        assert_eq!(f.batch_len, 4);
        assert_eq!(f.messages.len(), 3);
        assert_eq!(f.method.as_deref(), Some("notifications/initialized"));
        assert_eq!(f.id, None);
        assert_eq!(f.messages[1].tool.as_deref(), Some("vote"));
        assert_eq!(f.messages[1].id, Some(Value::from("b")));
        assert_eq!(f.messages[2].method, None);
        assert_eq!(
            f.pointer("/params/arguments/debate_id").as_deref(),
            Some("d-9")
        );
    }

    #[test]
    fn batch_without_any_jsonrpc_message_yields_nothing() {
        assert_eq!(parse(b"[1, {\"a\":2}]"), None);
    }

    #[test]
    fn prefix_of_a_complete_body_is_not_truncated() {
        let f = parse_prefix(CALL.as_bytes()).unwrap();
        assert!(!f.truncated);
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
    }

    #[test]
    fn cut_body_keeps_what_came_before_the_cut() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"submit_argument","arguments":{"debate_id":"d-42","text":"a very long argu"#;
        let f = parse_prefix(body).unwrap();
        assert!(f.truncated);
        assert_eq!(f.method.as_deref(), Some("tools/call"));
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
        assert_eq!(f.id_text().as_deref(), Some("7"));
        assert_eq!(
            f.pointer("/params/arguments/debate_id").as_deref(),
            Some("d-42")
        );
    }

    #[test]
    fn cut_batch_keeps_the_complete_messages() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"meth"#;
        let f = parse_prefix(body).unwrap();
        assert!(f.truncated);
        let methods: Vec<_> = f.messages.iter().map(|m| m.method.as_deref()).collect();
        // The third message is cut before its method: it survives as {"jsonrpc":"2.0","id":3}.
        assert_eq!(methods, vec![Some("ping"), Some("tools/list"), None]);
    }

    #[test]
    fn brackets_and_commas_inside_strings_do_not_confuse_the_repair() {
        let body = br#"{"jsonrpc":"2.0","id":"a,}]\"{[","method":"tools/call","params":{"name":"x\\","arguments":{"t":"}],"#;
        let f = parse_prefix(body).unwrap();
        assert_eq!(f.id, Some(Value::from("a,}]\"{[")));
        assert_eq!(f.tool.as_deref(), Some("x\\"));
    }

    #[test]
    fn every_cut_of_a_call_parses_safely_and_facts_only_grow() {
        // Split at every byte boundary: never a panic, never a wrong fact, and
        // once a fact is readable it stays readable in every longer prefix.
        let body = CALL.as_bytes();
        let mut had_method = false;
        let mut had_tool = false;
        for end in 0..=body.len() {
            let facts = parse_prefix(&body[..end]);
            if let Some(f) = &facts {
                assert!(f.method.is_none() || f.method.as_deref() == Some("tools/call"));
                assert!(f.tool.is_none() || f.tool.as_deref() == Some("submit_argument"));
                assert!(f.id.is_none() || f.id == Some(Value::from(7)));
            }
            let method = facts.as_ref().is_some_and(|f| f.method.is_some());
            let tool = facts.as_ref().is_some_and(|f| f.tool.is_some());
            assert!(!had_method || method, "method lost at {end}");
            assert!(!had_tool || tool, "tool lost at {end}");
            had_method |= method;
            had_tool |= tool;
        }
        assert!(had_method && had_tool);
    }

    #[test]
    fn malformed_and_hostile_prefixes_yield_nothing() {
        let deep = "[".repeat(10_000);
        for body in [
            &b"{]"[..],
            b"}}}}",
            b"{\"jsonrpc\":\"2.0\"}}",
            b"[1,2,",
            b"\xff{\"method\":\"x\",",
            deep.as_bytes(),
        ] {
            assert_eq!(parse_prefix(body), None, "{body:?}");
        }
    }

    #[test]
    fn close_truncated_shapes() {
        let close = |s: &str| close_truncated(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(close(r#"{"a":1,"b":"x"#).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(
            close(r#"{"a":{"b":[1,2"#).as_deref(),
            Some(r#"{"a":{"b":[1]}}"#)
        );
        assert_eq!(close(r#"{"a":{}"#).as_deref(), Some(r#"{"a":{}}"#));
        assert_eq!(close(r#"{"a"#).as_deref(), Some("{}"));
        assert_eq!(close(r#"{"a":1}"#), None);
        assert_eq!(close("nul"), None);
    }

    #[test]
    fn response_errors() {
        let err = |b: &[u8]| response_error(b);
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#),
            Some(ResponseError::Code(-32602))
        );
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}"#),
            Some(ResponseError::Unspecified)
        );
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#),
            Some(ResponseError::ToolError)
        );
        assert_eq!(
            err(br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-32601}}]"#),
            Some(ResponseError::Code(-32601))
        );
        for ok in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{},"error":null}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(err(ok), None, "{ok:?}");
        }
        // Cut after the error member: still read.
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"a long mess"#),
            Some(ResponseError::Code(-32000))
        );
    }
}
