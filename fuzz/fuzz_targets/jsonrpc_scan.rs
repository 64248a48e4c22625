//! The streaming JSON-RPC scanner: never panics, and chunks split anywhere
//! read exactly like the whole body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::jsonrpc_scan::{Pointers, Scanner};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let pointers = Pointers::parse(["/params/arguments/debate_id", "/params/x/0"]).unwrap();
    let mut whole = Scanner::new(pointers.clone());
    whole.push(body);
    let at = usize::from(split).min(body.len());
    let (a, b) = body.split_at(at);
    let mut parts = Scanner::new(pointers);
    parts.push(a);
    parts.push(b);
    let facts = whole.facts();
    assert_eq!(facts, parts.facts());
    if let Some(f) = &facts {
        // A message is only settled in a complete, well-formed body or
        // before the cut of a batch; a broken body settles nothing.
        if f.broken {
            assert!(f.messages.iter().all(|m| !m.settled));
        }
        for m in &f.messages {
            assert!(m.method.as_ref().is_none_or(|s| s.len() <= 256));
            assert!(m.tool.as_ref().is_none_or(|s| s.len() <= 256));
        }
    }
});
