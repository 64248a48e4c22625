//! A global token budget against a hostile rate-limit service: whatever
//! bytes and gRPC status come back, and whatever request body sized the
//! reservation, the stage never panics, answers either by letting the call
//! go on or with a 429 whose headers are valid HTTP values, and a call the
//! service did not clearly allow is never let through when `failure_mode`
//! is `deny`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::chain::Chain;
use mesh_core::mock_host::MockHost;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.len().min(usize::from(selector & 0x3f));
    let (body, answer) = rest.split_at(split);
    let deny = selector & 0x40 != 0;
    let config = format!(
        r#"{{"budgets": {{"limiter": "{}", "failure_mode": "{}", "global": {{"cluster": "rls"}},
            "plans": {{"*": [{{"name": "a", "window": "day"{}}}, {{"name": "b", "window": "month", "count": "cost"{}}}]}}}}}}"#,
        if selector & 0x80 != 0 { "local_then_global" } else { "global" },
        if deny { "deny" } else { "allow" },
        if selector & 0x80 != 0 { r#", "limit": 100000"# } else { "" },
        if selector & 0x80 != 0 { r#", "limit": 5"# } else { "" },
    );
    let mut host = MockHost::with_headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("x-mcp-org-id", "acme"),
    ]);
    host.now_ns = 1_700_000_000_000_000_000;
    let stages = token_usage_metrics::stage::build(config.as_bytes(), &host).unwrap();
    let mut chain = Chain::new(&stages);
    let mut read = |off: usize, len: usize| body.get(off..off + len).unwrap_or_default().to_vec();
    let went_on =
        chain.request_headers(&mut host, false) && chain.request_body(&mut host, body.len(), true, &mut read);
    if went_on || host.calls.is_empty() {
        return;
    }
    let status = u32::from(answer.first().copied().unwrap_or(0) & 0x0f);
    let message = answer.get(1..).unwrap_or_default();
    let resumed = chain.grpc_response(&mut host, status, message);
    match host.replies.last() {
        Some(reply) => {
            assert!(!resumed);
            assert_eq!(reply.status, 429);
            for (name, value) in &reply.headers {
                assert!(value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{name}: {value:?}");
            }
        }
        None => {
            assert!(resumed);
            // Allowed without a clear OK only when failures are allowed.
            let ok = status == 0 && mesh_core::rls::decode_response(message).is_ok_and(|r| r.overall == mesh_core::rls::Code::Ok);
            assert!(ok || !deny, "status {status}, {message:?}");
        }
    }
    chain.log(&mut host);
});
