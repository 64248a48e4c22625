//! What one request contributes to its access-log line: the `mcp_*`
//! filter-state values this filter owns, decided from the request's headers,
//! the JSON-RPC body prefix and how the request ended.
//!
//! Host-free: the glue passes header lookups as closures, so the same code
//! runs for a request whose headers this filter saw and for one that auth or
//! rate limiting answered before it (Envoy still hands the request headers to
//! the log phase).

use crate::response_watch::error_text;
use crate::sampling::{self, Outcome, SampleKey, Verdict};
use crate::settings::{Settings, Source};
use crate::trace_context::{self, TraceContext};
use mesh_core::identity::state;
use mesh_core::jsonrpc::{id_to_text, RequestFacts};
pub use mesh_core::log_value::clean;

/// What the body told us, if this filter read it.
#[derive(Debug, Clone, Default)]
pub struct BodyFacts {
    pub facts: Option<RequestFacts>,
    /// The body was longer than the cap (or ended before it was read).
    pub truncated: bool,
}

/// Header lookups: `None` when the header is absent.
pub struct Headers<'a> {
    pub request: &'a mut dyn FnMut(&str) -> Option<Vec<u8>>,
    pub response: &'a mut dyn FnMut(&str) -> Option<Vec<u8>>,
}

/// What to write for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// (filter-state key, value) pairs; absent facts are left out (the
    /// access log shows them as `null`).
    pub fields: Vec<(&'static str, String)>,
    pub verdict: Verdict,
}

/// Builds the record of one request.
pub fn record(
    settings: &Settings,
    headers: Headers<'_>,
    body: &BodyFacts,
    outcome: Outcome,
) -> Record {
    let max = settings.max_value_len;
    let mut out: Vec<(&'static str, String)> = Vec::with_capacity(12);
    let facts = body.facts.as_ref();
    push(
        &mut out,
        state::DEBATE_ID,
        debate_id(settings, &mut *headers.request, facts),
    );
    if let Some(facts) = facts {
        push_mcp_facts(&mut out, facts, max);
    }
    push(
        &mut out,
        state::JSONRPC_ERROR,
        outcome.rpc_error.map(error_text),
    );
    if body.truncated || facts.is_some_and(|f| f.truncated) {
        out.push((state::BODY_TRUNCATED, "1".into()));
    }
    let session = (headers.request)(&settings.session_header)
        .or_else(|| (headers.response)(&settings.session_header));
    push(
        &mut out,
        state::SESSION_ID,
        session.and_then(|v| clean(&v, max)),
    );
    let trace = trace_context::extract(&mut *headers.request);
    if let Some(tc) = &trace {
        out.push((state::TRACE_ID, tc.trace_id.clone()));
        push(&mut out, state::SPAN_ID, tc.span_id.clone());
    }
    let verdict = push_sampling(&mut out, settings, &mut *headers.request, trace, outcome);
    Record {
        fields: out,
        verdict,
    }
}

/// Method, tool and id of every message (comma-separated for a batch).
fn push_mcp_facts(out: &mut Vec<(&'static str, String)>, facts: &RequestFacts, max: usize) {
    let messages = &facts.messages;
    let methods = join(messages.iter().filter_map(|m| m.method.as_deref()), max);
    let tools = join(messages.iter().filter_map(|m| m.tool.as_deref()), max);
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.id.as_ref())
        .map(id_to_text)
        .collect();
    push(out, state::METHOD, methods);
    push(out, state::TOOL, tools);
    push(
        out,
        state::JSONRPC_ID,
        join(ids.iter().map(String::as_str), max),
    );
    if facts.batch_len > 1 || messages.len() > 1 {
        out.push((state::BATCH_SIZE, facts.batch_len.to_string()));
    }
}

/// The sampling verdict, and the rate a logged line was kept at.
fn push_sampling(
    out: &mut Vec<(&'static str, String)>,
    settings: &Settings,
    request: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    trace: Option<TraceContext>,
    outcome: Outcome,
) -> Verdict {
    let rate = settings.success_rate;
    let traced = settings.always_log_traced && trace.as_ref().is_some_and(|t| t.sampled);
    // x-request-id is read only when the verdict really depends on it.
    let draws = !outcome.is_error() && !traced && rate > 0.0 && rate < 1.0;
    let request_id;
    let key = match &trace {
        Some(tc) => SampleKey::TraceId(&tc.trace_id),
        None if draws => {
            request_id = request("x-request-id");
            request_id
                .as_deref()
                .map_or(SampleKey::None, SampleKey::RequestId)
        }
        None => SampleKey::None,
    };
    let verdict = sampling::decide(outcome, rate, traced, key, &settings.salt);
    let logged = verdict.logged();
    // Only a dropped line needs the verdict: the log's CEL filter keeps every
    // line without one (a filter-state write costs about 4,800 instructions).
    if !logged {
        out.push((state::LOG_SAMPLED, "0".into()));
    }
    if logged {
        let kept_at = if verdict == Verdict::Always {
            1.0
        } else {
            rate
        };
        out.push((state::LOG_SAMPLE_RATE, format_rate(kept_at)));
    }
    verdict
}

/// The debate id from the first configured source that has one.
fn debate_id(
    settings: &Settings,
    request: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    facts: Option<&RequestFacts>,
) -> Option<String> {
    let max = settings.max_value_len;
    let mut path: Option<Option<Vec<u8>>> = None;
    settings.sources.iter().find_map(|source| match source {
        Source::Path(pattern) => {
            let path = path.get_or_insert_with(|| request(":path"));
            let text = std::str::from_utf8(path.as_deref()?).ok()?;
            clean(pattern.capture(text)?.as_bytes(), max)
        }
        Source::Header(name) => clean(&request(name)?, max),
        Source::JsonPointer(_, index) => clean(facts?.pointer_at(*index)?.as_bytes(), max),
    })
}

/// `a,b,c` of the cleaned values, cut to `max` bytes.
fn join<'a>(values: impl Iterator<Item = &'a str>, max: usize) -> Option<String> {
    let joined = values.collect::<Vec<_>>().join(",");
    clean(joined.as_bytes(), max)
}

fn push(out: &mut Vec<(&'static str, String)>, key: &'static str, value: Option<String>) {
    if let Some(value) = value {
        out.push((key, value));
    }
}

/// `1`, `0.25`, `0.000001`: six decimals at most, without float formatting
/// (which would add tens of KB to the wasm).
fn format_rate(rate: f64) -> String {
    let ppm = (rate.clamp(0.0, 1.0) * 1e6).round() as u32;
    if ppm >= 1_000_000 {
        return "1".into();
    }
    let decimals = format!("{ppm:06}");
    format!("0.{}", decimals.trim_end_matches('0'))
        .trim_end_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use mesh_core::jsonrpc::parse_with;
    use mesh_core::jsonrpc_scan::Pointers;
    use std::collections::HashMap;

    type Map = HashMap<&'static str, &'static [u8]>;

    fn settings(json: &str) -> Settings {
        mesh_core::config_error::load::<Config>(json.as_bytes())
            .unwrap()
            .compile()
            .unwrap()
    }

    fn run(
        s: &Settings,
        req: &Map,
        resp: &Map,
        body: BodyFacts,
        outcome: Outcome,
    ) -> HashMap<&'static str, String> {
        let mut request = |n: &str| req.get(n).map(|v| v.to_vec());
        let mut response = |n: &str| resp.get(n).map(|v| v.to_vec());
        let headers = Headers {
            request: &mut request,
            response: &mut response,
        };
        let out = record(s, headers, &body, outcome).fields;
        let map: HashMap<_, _> = out.iter().cloned().collect();
        assert_eq!(map.len(), out.len(), "a key was written twice: {out:?}");
        map
    }

    const OK: Outcome = Outcome {
        status: Some(200),
        flags: 0,
        rpc_error: None,
    };
    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"submit_argument","arguments":{"debate_id":"d-body","text":"x"}}}"#;

    fn parse(bytes: &[u8]) -> Option<mesh_core::jsonrpc::RequestFacts> {
        parse_with(
            bytes,
            &Pointers::parse(["/params/arguments/debate_id"]).unwrap(),
        )
    }

    fn body(bytes: &[u8]) -> BodyFacts {
        BodyFacts {
            facts: parse(bytes),
            truncated: false,
        }
    }

    #[test]
    fn the_second_json_pointer_answers_when_the_first_has_nothing() {
        let s = settings(
            r#"{"debate_id_sources": [{"json_pointer": "/params/a"}, {"header": "x-d"}, {"json_pointer": "/params/b"}]}"#,
        );
        let call =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","b":"d-b"}}"#;
        let body = BodyFacts {
            facts: parse_with(call, &s.pointers),
            truncated: false,
        };
        assert_eq!(
            run(&s, &Map::new(), &Map::new(), body, OK)[state::DEBATE_ID],
            "d-b"
        );
    }

    /// Bodies the MCP server accepts and serde_json refuses are logged with
    /// their facts (issue 12).
    #[test]
    fn bodies_serde_refuses_are_logged_with_their_facts() {
        let s = settings("{}");
        for value in ["NaN", "Infinity", "1e400", &"7".repeat(400)] {
            let call = format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"run_debate_round","arguments":{{"debate_id":"d-9","n":{value}}}}}}}"#
            );
            let f = run(&s, &Map::new(), &Map::new(), body(call.as_bytes()), OK);
            assert_eq!(f[state::METHOD], "tools/call", "{value}");
            assert_eq!(f[state::TOOL], "run_debate_round");
            assert_eq!(f[state::DEBATE_ID], "d-9");
        }
    }

    #[test]
    fn tools_call_fields() {
        let s = settings("{}");
        let req: Map = [
            (":path", &b"/mcp"[..]),
            ("mcp-session-id", b"sess-1"),
            (
                "traceparent",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]
        .into();
        let f = run(&s, &req, &Map::new(), body(CALL), OK);
        assert_eq!(f[state::DEBATE_ID], "d-body");
        assert_eq!(f[state::METHOD], "tools/call");
        assert_eq!(f[state::TOOL], "submit_argument");
        assert_eq!(f[state::JSONRPC_ID], "7");
        assert_eq!(f[state::SESSION_ID], "sess-1");
        assert_eq!(f[state::TRACE_ID], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(f[state::SPAN_ID], "00f067aa0ba902b7");
        assert!(
            !f.contains_key(state::LOG_SAMPLED),
            "a kept line needs no verdict"
        );
        assert_eq!(f[state::LOG_SAMPLE_RATE], "1");
        assert!(!f.contains_key(state::BATCH_SIZE));
        assert!(!f.contains_key(state::BODY_TRUNCATED));
    }

    #[test]
    fn debate_id_sources_are_tried_in_order() {
        let req: Map = [
            (":path", &b"/debates/d-path/args?k=1"[..]),
            ("x-debate-id", b"d-header"),
        ]
        .into();
        let default = settings("{}");
        assert_eq!(
            run(&default, &req, &Map::new(), body(CALL), OK)[state::DEBATE_ID],
            "d-path"
        );
        let body_first = settings(
            r#"{"debate_id_sources": [{"json_pointer": "/params/arguments/debate_id"}, {"header": "x-debate-id"}]}"#,
        );
        assert_eq!(
            run(&body_first, &req, &Map::new(), body(CALL), OK)[state::DEBATE_ID],
            "d-body"
        );
        // No body (e.g. answered by auth before it arrived): the next source still answers.
        assert_eq!(
            run(&body_first, &req, &Map::new(), BodyFacts::default(), OK)[state::DEBATE_ID],
            "d-header"
        );
        let none = settings(r#"{"debate_id_sources": []}"#);
        assert!(!run(&none, &req, &Map::new(), body(CALL), OK).contains_key(state::DEBATE_ID));
    }

    #[test]
    fn batch_fields_list_every_message() {
        let s = settings("{}");
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
                         {"jsonrpc":"2.0","method":"notifications/progress"},
                         {"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"b"}}]"#;
        let f = run(&s, &Map::new(), &Map::new(), body(batch), OK);
        assert_eq!(
            f[state::METHOD],
            "tools/call,notifications/progress,tools/call"
        );
        assert_eq!(f[state::TOOL], "a,b");
        assert_eq!(f[state::JSONRPC_ID], r#"1,"x""#);
        assert_eq!(f[state::BATCH_SIZE], "3");
    }

    #[test]
    fn truncated_body_is_flagged_and_keeps_early_facts() {
        let s = settings("{}");
        let cut = &CALL[..CALL.len() - 20];
        let f = run(
            &s,
            &Map::new(),
            &Map::new(),
            BodyFacts {
                facts: parse(cut),
                truncated: true,
            },
            OK,
        );
        assert_eq!(f[state::TOOL], "submit_argument");
        assert_eq!(f[state::BODY_TRUNCATED], "1");
    }

    #[test]
    fn session_id_falls_back_to_the_response_header() {
        let s = settings("{}");
        let resp: Map = [("mcp-session-id", &b"new-session"[..])].into();
        assert_eq!(
            run(&s, &Map::new(), &resp, BodyFacts::default(), OK)[state::SESSION_ID],
            "new-session"
        );
    }

    #[test]
    fn hostile_values_are_cleaned_and_capped() {
        let s = settings(r#"{"max_value_len": 16}"#);
        let req: Map = [
            ("x-debate-id", &b"d\"},\n\"org_id\":\"admin"[..]),
            ("mcp-session-id", b"\x00\x1b[31m\xff\xfe"),
        ]
        .into();
        let f = run(&s, &req, &Map::new(), BodyFacts::default(), OK);
        let debate = &f[state::DEBATE_ID];
        assert!(debate.len() <= 16);
        assert!(!debate.chars().any(char::is_control), "{debate:?}");
        assert!(debate.starts_with("d\"},\u{FFFD}"), "{debate:?}");
        assert!(!f[state::SESSION_ID].chars().any(char::is_control));
    }

    #[test]
    fn clean_rules() {
        assert_eq!(clean(b"  d-1 \t", 10).as_deref(), Some("d-1"));
        assert_eq!(clean(b"", 10), None);
        assert_eq!(clean(b" \r\n ", 10), None);
        assert_eq!(
            clean("a\u{2028}b".as_bytes(), 10).as_deref(),
            Some("a\u{FFFD}b")
        );
        assert_eq!(clean("ééé".as_bytes(), 5).as_deref(), Some("éé"));
        assert_eq!(clean(b"\x7f", 10).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn sampling_verdicts_land_in_filter_state() {
        let s = settings(r#"{"sampling": {"success_rate": 0}}"#);
        let ok = run(&s, &Map::new(), &Map::new(), BodyFacts::default(), OK);
        assert_eq!(ok[state::LOG_SAMPLED], "0");
        assert!(!ok.contains_key(state::LOG_SAMPLE_RATE));
        let denied = run(
            &s,
            &Map::new(),
            &Map::new(),
            BodyFacts::default(),
            Outcome {
                status: Some(429),
                flags: 0,
                rpc_error: None,
            },
        );
        assert!(!denied.contains_key(state::LOG_SAMPLED));
        assert_eq!(denied[state::LOG_SAMPLE_RATE], "1");

        let tenth =
            settings(r#"{"sampling": {"success_rate": 0.1, "salt": "test-salt-0123456789"}}"#);
        // Kept lines carry the rate they were kept at; about a tenth are kept.
        let mut kept = 0;
        for i in 0..400u32 {
            let tp = format!("00-4bf92f3577b34da6{i:016x}-00f067aa0ba902b7-00");
            let req: Map = [(
                "traceparent",
                &*Box::leak(tp.into_bytes().into_boxed_slice()),
            )]
            .into();
            let f = run(&tenth, &req, &Map::new(), BodyFacts::default(), OK);
            if !f.contains_key(state::LOG_SAMPLED) {
                kept += 1;
                assert_eq!(f[state::LOG_SAMPLE_RATE], "0.1");
            } else {
                assert!(!f.contains_key(state::LOG_SAMPLE_RATE));
            }
        }
        assert!((20..70).contains(&kept), "{kept} of 400 kept at 0.1");

        let traced = settings(r#"{"sampling": {"success_rate": 0, "always_log_traced": true}}"#);
        let sampled_flag: Map = [(
            "traceparent",
            &b"00-4bf92f3577b34da6ffffffffffffffff-00f067aa0ba902b7-01"[..],
        )]
        .into();
        assert!(!run(
            &traced,
            &sampled_flag,
            &Map::new(),
            BodyFacts::default(),
            OK
        )
        .contains_key(state::LOG_SAMPLED));
        assert_eq!(
            run(&tenth, &sampled_flag, &Map::new(), BodyFacts::default(), OK)[state::LOG_SAMPLED],
            "0"
        );
    }

    #[test]
    fn rate_formatting() {
        assert_eq!(format_rate(1.0), "1");
        assert_eq!(format_rate(0.25), "0.25");
        assert_eq!(format_rate(0.000001), "0.000001");
        assert_eq!(format_rate(0.1), "0.1");
        assert_eq!(format_rate(0.0), "0");
    }

    #[test]
    fn reads_only_the_headers_it_needs() {
        let reads = |s: &Settings, path: &'static [u8]| {
            let mut seen = Vec::new();
            let mut request = |n: &str| {
                seen.push(n.to_string());
                (n == ":path").then(|| path.to_vec())
            };
            let mut response = |_: &str| None;
            let headers = Headers {
                request: &mut request,
                response: &mut response,
            };
            record(s, headers, &BodyFacts::default(), OK);
            seen
        };
        let all = settings("{}");
        assert_eq!(
            reads(&all, b"/debates/d-1"),
            [
                ":path",
                "mcp-session-id",
                "traceparent",
                "b3",
                "x-b3-traceid"
            ]
        );
        // The path did not match: the next source (the header) is asked.
        assert!(reads(&all, b"/mcp").contains(&"x-debate-id".to_string()));
        // A fractional rate without a trace id hashes x-request-id.
        let half =
            settings(r#"{"sampling": {"success_rate": 0.5, "salt": "test-salt-0123456789"}}"#);
        assert_eq!(
            reads(&half, b"/debates/d-1").last().map(String::as_str),
            Some("x-request-id")
        );
    }
}
