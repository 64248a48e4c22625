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

/// Ids are echoed whole or not at all (past MAX_ID_LEN bytes of text): the
/// scanner's id, when it has one, is serde's; and an id that certainly fits
/// (a short string, even with every character escaped) is never lost.
fn id_ok(got: &Option<Value>, want: &Option<Value>) -> bool {
    match (got, want) {
        (Some(g), Some(w)) => g == w,
        (Some(_), None) => false,
        (None, Some(Value::String(s))) => s.len() * 12 > mesh_core::jsonrpc_scan::MAX_ID_LEN,
        (None, _) => true,
    }
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
            (method, tool, id)
        })
        .collect();
    let facts = jsonrpc::parse(data);
    if expected.is_empty() {
        assert!(facts.is_none() || facts.as_ref().is_some_and(|f| f.messages.is_empty()), "{facts:?}");
        return;
    }
    let facts = facts.expect("serde_json read a JSON-RPC body the scanner did not");
    assert!(facts.is_complete(), "{facts:?}");
    assert_eq!(facts.messages.len(), expected.len());
    for (m, (method, tool, id)) in facts.messages.iter().zip(&expected) {
        assert!(m.settled);
        assert_eq!((&m.method, &m.tool), (method, tool));
        assert!(id_ok(&m.id, id), "id {:?} vs {:?}", m.id, id);
    }
});
