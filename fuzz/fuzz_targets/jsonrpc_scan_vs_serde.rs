//! Differential: wherever serde_json reads a body (a subset of what the MCP
//! server reads), the scanner settles the same method, tool and id, message
//! by message (both let the last duplicate key win).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::jsonrpc;
use serde_json::Value;

fn cap(s: &str) -> String {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let expected: Vec<(Option<String>, Option<String>, Option<Value>)> = items
        .iter()
        .filter_map(|v| v.as_object())
        .filter(|o| o.contains_key("jsonrpc") || o.contains_key("method"))
        .map(|o| {
            let method = o.get("method").and_then(Value::as_str).map(cap);
            let tool = (method.as_deref() == Some("tools/call"))
                .then(|| o.get("params")?.get("name")?.as_str().map(cap))
                .flatten();
            let id = o.get("id").filter(|v| v.is_string() || v.is_number()).cloned();
            (method, tool, id.map(|v| match v {
                Value::String(s) => Value::String(cap(&s)),
                other => other,
            }))
        })
        .collect();
    let facts = jsonrpc::parse(data);
    if expected.is_empty() {
        assert!(facts.is_none() || facts.as_ref().is_some_and(|f| f.messages.is_empty()), "{facts:?}");
        return;
    }
    let facts = facts.expect("serde_json read a JSON-RPC body the scanner did not");
    assert!(facts.is_complete(), "{facts:?}");
    let got: Vec<_> = facts
        .messages
        .iter()
        .map(|m| {
            assert!(m.settled);
            (m.method.clone(), m.tool.clone(), m.id.clone())
        })
        .collect();
    assert_eq!(got, expected);
});
