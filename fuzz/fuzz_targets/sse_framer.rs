//! The SSE framer: never panics, events are the same whatever the chunking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::sse::SseFramer;

fn events(chunks: &[&[u8]]) -> (Vec<(String, Vec<u8>)>, u64) {
    let mut framer = SseFramer::new(512);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk, &mut |e| out.push((e.event.to_string(), e.data.to_vec())));
    }
    (out, framer.oversized_events())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(body.len());
    let (a, b) = body.split_at(at);
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    let whole = events(&[body]);
    assert_eq!(whole, events(&[a, b]));
    assert_eq!(whole, events(&bytewise));
});
