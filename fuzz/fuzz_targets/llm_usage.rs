//! Provider usage parsers (OpenAI, Anthropic, Gemini; JSON and SSE): never
//! panic, whatever the response.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::llm_usage::{Api, ReadLimits, UsageReader, UsageState};

const APIS: [&str; 6] = [
    "openai_chat",
    "openai_responses",
    "anthropic_messages",
    "gemini",
    "openai",
    "anthropic",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = APIS[usize::from(selector) % APIS.len()];
    let Some(api) = Api::from_name(name) else {
        return;
    };
    let mut json = UsageState::new(api);
    json.on_json(body);
    let _ = json.usage();
    let limits = ReadLimits { max_json_bytes: 4096, max_event_bytes: 1024 };
    let content_type = if selector & 0x80 != 0 { "text/event-stream" } else { "application/json" };
    let mut reader = UsageReader::new(api, Some(content_type), None, limits);
    for chunk in body.chunks(usize::from(selector % 7) + 1) {
        let wanted = reader.wanted(chunk.len());
        if wanted == chunk.len() {
            reader.push(chunk);
        } else {
            reader.skip(chunk.len());
        }
    }
    let _ = reader.finish(200, selector & 1 == 0);
    let _ = reader.state().usage().map(|u| u.total());
});
