//! Every provider fixture in tests/fixtures/llm, fed whole, byte by byte and
//! cut in two at every byte, gives the counts in tests/fixtures/llm/cases.json.

// A test binary: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use mesh_core::config_error::load;
use mesh_core::llm_usage::{Outcome, ReadLimits, Usage, UsageReader};
use serde_json::Value;
use std::path::PathBuf;
use token_usage_metrics::config::Config;
use token_usage_metrics::route;

const LIMITS: ReadLimits = ReadLimits {
    max_json_bytes: 1 << 20,
    max_event_bytes: 1 << 16,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llm")
}

#[derive(Debug, PartialEq)]
struct Seen {
    outcome: Outcome,
    usage: Option<Usage>,
    model: Option<String>,
}

fn read(case: &Value, chunks: &[&[u8]]) -> Seen {
    let config: Config = load(b"{}").unwrap();
    let path = case["path"].as_str().unwrap();
    let matched =
        route::match_path(&config, path).unwrap_or_else(|| panic!("{path} not an LLM call"));
    let mut reader = UsageReader::new(matched.api, case["content_type"].as_str(), None, LIMITS);
    for chunk in chunks {
        assert_eq!(reader.wanted(chunk.len()), chunk.len());
        reader.push(chunk);
    }
    let outcome = reader.finish(case["status"].as_u64().unwrap() as u32, true);
    Seen {
        outcome,
        usage: reader.state().usage(),
        model: reader.state().response_model().map(String::from),
    }
}

fn expected_usage(case: &Value) -> Option<Usage> {
    let u = case.get("usage").filter(|u| !u.is_null())?;
    let n = |k: &str| u[k].as_u64().unwrap();
    Some(Usage {
        input: n("input"),
        output: n("output"),
        cached_input: n("cached_input"),
        cache_creation_input: n("cache_creation_input"),
        reasoning: n("reasoning"),
    })
}

#[test]
fn every_fixture_at_every_split_gives_the_documented_counts() {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("cases.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (name, case) in cases.as_object().unwrap() {
        if name.starts_with('_') {
            continue;
        }
        let body = std::fs::read(fixtures().join(name)).unwrap();
        let whole = read(case, &[&body]);
        assert_eq!(
            whole.outcome.label(),
            case["outcome"].as_str().unwrap(),
            "{name}"
        );
        if let Outcome::UsageMissing(reason) = whole.outcome {
            assert_eq!(reason.label(), case["reason"].as_str().unwrap(), "{name}");
        }
        assert_eq!(whole.usage, expected_usage(case), "{name}");
        assert_eq!(
            whole.model.as_deref(),
            case["response_model"].as_str(),
            "{name}"
        );

        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(read(case, &bytes), whole, "{name} byte by byte");
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(read(case, &[a, b]), whole, "{name} cut at {cut}");
        }
        checked += 1;
    }
    assert!(checked >= 19, "only {checked} fixtures");
}

#[test]
fn every_prefix_of_a_stream_is_safe_and_never_overcounts() {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("cases.json")).unwrap()).unwrap();
    for (name, case) in cases.as_object().unwrap() {
        if !name.ends_with(".sse") {
            continue;
        }
        let body = std::fs::read(fixtures().join(name)).unwrap();
        let full = expected_usage(case).unwrap_or_default();
        for end in 0..body.len() {
            let seen = read(case, &[&body[..end]]);
            let u = seen.usage.unwrap_or_default();
            assert!(
                u.input <= full.input && u.output <= full.output,
                "{name} prefix {end}"
            );
        }
    }
}
