//! Credential extraction from headers and the query: never panics; a found
//! credential is never longer than the cap.
#![no_main]
use api_key_auth::config::KeySource;
use api_key_auth::credential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("/");
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_start().as_bytes().to_vec()))
        .collect();
    let sources = vec![
        KeySource::header("x-api-key"),
        KeySource { header: Some("authorization".into()), value_prefix: Some("Bearer ".into()), query: None },
        KeySource { header: None, value_prefix: None, query: Some("api_key".into()) },
    ];
    let _ = credential::find(&sources, &headers, path, 512);
    let _ = credential::carrying_headers(&sources, &headers);
    let _ = credential::remove_query_params(path, &["api_key".to_string()]);
});
