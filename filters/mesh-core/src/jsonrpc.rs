//! Facts about an MCP (JSON-RPC 2.0) request body: method, tool, id, and any
//! value addressed by a JSON pointer (the debate id, for example).
//!
//! Request bodies are read by the tolerant streaming scanner in
//! [`crate::jsonrpc_scan`], which reads a body the way the MCP server does
//! (NaN, huge numbers, deep nesting, escaped keys, last duplicate wins). A
//! body that is not JSON-RPC yields no facts; one that is cut or broken yields
//! facts whose open message is not *settled*, and whoever prices or
//! authorizes it must assume the worst.

use crate::jsonrpc_scan::{self, Pointers};
use serde_json::Value;

/// Longest value we keep for any single fact; clients control these strings.
pub const MAX_FACT_LEN: usize = 256;

/// Deepest nesting [`response_error`] repairs; serde_json refuses deeper input anyway.
const MAX_DEPTH: usize = 128;

/// What one JSON-RPC message of a body says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageFacts {
    /// `method`, e.g. `tools/call`; `None` for a response sent by the client.
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
    /// `params.name` whatever the method (`prompts/get` names a prompt).
    pub name: Option<String>,
    /// `params.uri` (`resources/read`).
    pub uri: Option<String>,
    /// The JSON-RPC `id` (string, or a valid JSON number); `None` for
    /// notifications.
    pub id: Option<Value>,
    /// The message's object closed in a well-formed body: nothing later in
    /// the body can change these facts. False for a message cut at the cap or
    /// in a body that broke.
    pub settled: bool,
    /// Values at the scan's JSON pointers, in their order.
    pub pointers: Vec<Option<String>>,
}

impl MessageFacts {
    /// A message that is known to exist but of which nothing can be trusted.
    pub fn unsettled(pointers: usize) -> Self {
        Self {
            pointers: vec![None; pointers],
            ..Self::default()
        }
    }
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
    /// The body is a JSON array (a batch, also of one message).
    pub batch: bool,
    /// Every JSON-RPC message, in body order (one unless a batch).
    pub messages: Vec<MessageFacts>,
    /// The body was cut (at the cap) before its top-level value ended:
    /// later messages or members may be missing.
    pub truncated: bool,
    /// The body is not well-formed JSON from some byte on (the server will
    /// refuse it); nothing after that byte was read.
    pub broken: bool,
    /// The pointers the scan followed (for [`RequestFacts::pointer`]).
    pub(crate) pointers: Pointers,
}

impl RequestFacts {
    /// The `id` rendered as JSON text (`7`, `"abc"`), for logs.
    pub fn id_text(&self) -> Option<String> {
        self.id.as_ref().map(id_to_text)
    }

    /// True when the whole body was read and is well-formed.
    pub fn is_complete(&self) -> bool {
        !self.truncated && !self.broken
    }
}

/// The JSON text of an `id` (`7`, `"abc"`), capped to [`MAX_FACT_LEN`].
pub fn id_to_text(id: &Value) -> String {
    cap(id.to_string())
}

/// Scans a request body, whole or cut, without JSON pointers.
pub fn parse(body: &[u8]) -> Option<RequestFacts> {
    jsonrpc_scan::scan(body, &Pointers::default())
}

/// Scans a request body, whole or cut, following `pointers`.
pub fn parse_with(body: &[u8], pointers: &Pointers) -> Option<RequestFacts> {
    jsonrpc_scan::scan(body, pointers)
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

    fn with_pointer(body: &[u8], pointer: &str) -> Option<RequestFacts> {
        parse_with(body, &Pointers::parse([pointer]).unwrap())
    }

    #[test]
    fn tools_call_facts() {
        let f = with_pointer(CALL.as_bytes(), "/params/arguments/debate_id").unwrap();
        assert_eq!(f.method.as_deref(), Some("tools/call"));
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
        assert_eq!(f.id_text().as_deref(), Some("7"));
        assert_eq!(
            f.pointer("/params/arguments/debate_id").as_deref(),
            Some("d-42")
        );
        assert_eq!(f.pointer("/params/arguments/missing"), None);
        assert_eq!(f.batch_len, 1);
        assert!(f.messages[0].settled && f.is_complete());
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
            b"\xff\xfe",
            b"42",
            b"\"x\"",
            b"  ",
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
        let f = with_pointer(body, "/params/arguments/debate_id").unwrap();
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
        let f = parse(CALL.as_bytes()).unwrap();
        assert!(!f.truncated);
        assert_eq!(f.tool.as_deref(), Some("submit_argument"));
    }

    #[test]
    fn cut_body_keeps_what_came_before_the_cut() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"submit_argument","arguments":{"debate_id":"d-42","text":"a very long argu"#;
        let f = with_pointer(body, "/params/arguments/debate_id").unwrap();
        assert!(f.truncated && !f.messages[0].settled);
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
        let f = parse(body).unwrap();
        assert!(f.truncated);
        let settled: Vec<_> = f.messages.iter().map(|m| m.settled).collect();
        assert_eq!(settled, vec![true, true, false]);
        let methods: Vec<_> = f.messages.iter().map(|m| m.method.as_deref()).collect();
        // The third message is cut before its method: it survives as {"jsonrpc":"2.0","id":3}.
        assert_eq!(methods, vec![Some("ping"), Some("tools/list"), None]);
    }

    #[test]
    fn brackets_and_commas_inside_strings_do_not_confuse_the_repair() {
        let body = br#"{"jsonrpc":"2.0","id":"a,}]\"{[","method":"tools/call","params":{"name":"x\\","arguments":{"t":"}],"#;
        let f = parse(body).unwrap();
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
            let facts = parse(&body[..end]);
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
    fn malformed_bodies_settle_nothing() {
        let deep = "[".repeat(10_000);
        for body in [
            &b"{]"[..],
            b"}}}}",
            b"{\"jsonrpc\":\"2.0\"}}",
            b"{\"jsonrpc\":",
            b"\xff{\"method\":\"x\",",
            deep.as_bytes(),
        ] {
            let f = parse(body).unwrap_or_else(|| panic!("{body:?}"));
            assert!(f.messages.iter().all(|m| !m.settled), "{body:?}");
            assert!(!f.is_complete());
        }
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
