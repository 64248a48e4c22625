//! Rate-limit response headers: never panic, and every value is a valid
//! HTTP header value (visible ASCII and spaces: no CR, LF or NUL), whatever
//! the policy name and quota.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::ratelimit_headers::headers;
use mesh_core::token_bucket::Quota;

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
    let quota = Quota {
        limit: word(0),
        remaining: word(1),
        reset_secs: word(2),
        retry_after_secs: word(3),
        window_secs: word(0).rotate_left(17),
    };
    let policy = String::from_utf8_lossy(&data[32..]);
    for (name, value) in headers(&policy, &quota, data[32] & 1 == 0) {
        assert!(value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{name}: {value:?}");
    }
});
