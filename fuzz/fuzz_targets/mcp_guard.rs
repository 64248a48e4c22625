//! mcp-guard's hostile-input paths: list answers are filtered the same
//! whatever the chunking (JSON and SSE) and never panic; MCP headers held to
//! any body never panic, and a body the check passes names what the headers
//! name.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_guard::config::{Lists, Overflow};
use mcp_guard::list_filter::{Framing, ListFilter, ListKind};
use mesh_core::jsonrpc_scan::{scan, Pointers};
use mesh_core::mcp::{self, Call, HeaderFacts};

fn filtered(framing: Framing, chunks: &[&[u8]]) -> Vec<u8> {
    let mut f = ListFilter::new(
        vec![ListKind::Tools, ListKind::Prompts, ListKind::Resources],
        framing,
        &Lists {
            filter: true,
            max_bytes: 512,
            on_overflow: Overflow::Block,
        },
        serde_json::Value::from(1),
        Box::new(|c: &Call| c.name.as_deref().is_some_and(|n| !n.starts_with('x'))),
    );
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        match f.push(chunk, i + 1 == chunks.len()) {
            Some(new) => out.extend_from_slice(&new),
            None => out.extend_from_slice(chunk),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let Some((&hdr_len, body)) = rest.split_first() else {
        return;
    };
    let at = usize::from(split).min(body.len());
    let (a, b) = body.split_at(at);
    for framing in [Framing::Json, Framing::Sse] {
        let whole = filtered(framing, &[body]);
        assert_eq!(whole, filtered(framing, &[a, b]), "{framing:?} split {at}");
    }

    // Header values from the input, held to the rest as a body.
    let (raw, body) = body.split_at(usize::from(hdr_len).min(body.len()));
    let values: Vec<&[u8]> = raw.split(|&c| c == b'\n').collect();
    let names = ["mcp-protocol-version", "mcp-method", "mcp-name", "mcp-name"];
    let headers: Vec<(String, Vec<u8>)> = names
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    let facts = HeaderFacts::read(&headers);
    let _ = mcp::check_headers(&facts);
    let pointers = Pointers::parse(mcp::pointer::ALL).unwrap_or_default();
    if let Some(message) = scan(body, &pointers).and_then(|f| f.messages.into_iter().next()) {
        if mcp::check(&facts, &message).is_ok() {
            assert_eq!(facts.call(), Call::of(&message));
        }
    }
});
