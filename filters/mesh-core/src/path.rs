//! Request paths as a server reads them, for rules that must not be
//! escaped by another spelling: `/healthz/../admin` must not match a
//! `/healthz` rule, `/%61dmin` must match an `/admin` one. Shared by
//! api-key-auth's route rules and skip paths and mcp-guard's skip paths.

/// `:path` without `?query` or `#fragment`.
pub fn path_only(raw: &str) -> &str {
    raw.split(['?', '#']).next().unwrap_or(raw)
}

/// `:path` without its query, when it already is in normal form: the only
/// spelling a skip rule may match (`/v1/../mcp` never skips `/v1/`).
pub fn normal_form(raw: &str) -> Option<&str> {
    let path = path_only(raw);
    (normalize(path) == path).then_some(path)
}

/// RFC 3986 normalization, plus the decodings upstream servers are known to
/// apply (`%2F`, `%5C`, `\`) so that no spelling of a path escapes a rule.
pub fn normalize(path: &str) -> String {
    let decoded = decode_for_matching(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

fn decode_for_matching(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex {
                if c.is_ascii_alphanumeric() || b"-._~/\\".contains(&c) {
                    out.push(if c == b'\\' { b'/' } else { c });
                    i += 3;
                    continue;
                }
            }
        }
        out.push(if b == b'\\' { b'/' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
