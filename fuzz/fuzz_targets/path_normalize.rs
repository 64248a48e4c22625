//! Path normalization for skip paths and route rules: never panics, always
//! an absolute path, and a normalized path holds no dot segment a server
//! could resolve upwards.
#![no_main]
use api_key_auth::routes::{normalize, path_only};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let path = normalize(path_only(&raw));
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(!path.split('/').any(|s| s == ".."), "{raw:?} -> {path:?}");
});
