//! Finding the credential in a request: every configured source is looked at,
//! and all credentials present must be the same string.
//!
//! Input is what the host gave us (header values as raw bytes, the raw
//! `:path`), so non-UTF-8, control characters and repeated headers are
//! handled here, natively tested, and never reach the crypto code.

use crate::config::KeySource;

/// The outcome of looking for a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// Present but unusable: too long, empty, or bytes outside visible ASCII.
    Malformed,
    /// Two sources (or two copies of one header) carry different values.
    Conflicting,
    One(Credential),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub value: String,
    /// Header names that carried it (removed before forwarding unless kept).
    pub headers: Vec<String>,
    /// Query parameters that carried it.
    pub query_params: Vec<String>,
}

/// Looks through `sources` in order. `headers` are (lowercase name, raw value)
/// as the host returns them, repeated names included.
pub fn find(
    sources: &[KeySource],
    headers: &[(String, Vec<u8>)],
    path: &str,
    max_len: usize,
) -> Found {
    let mut value: Option<String> = None;
    let mut credential = Credential {
        value: String::new(),
        headers: Vec::new(),
        query_params: Vec::new(),
    };
    let mut malformed = false;
    let mut conflicting = false;
    let mut take = |raw: &[u8], malformed: &mut bool| -> bool {
        match clean(raw, max_len) {
            None => {
                *malformed = true;
                false
            }
            Some(v) => {
                match &value {
                    Some(seen) if *seen != v => conflicting = true,
                    Some(_) => {}
                    None => value = Some(v),
                }
                true
            }
        }
    };
    for source in sources {
        if let Some(name) = &source.header {
            for (_, raw) in headers.iter().filter(|(n, _)| n == name) {
                let raw = match &source.value_prefix {
                    None => raw.as_slice(),
                    // `Authorization: Basic ...` is someone else's credential.
                    Some(prefix) => match strip_prefix_ignore_case(raw, prefix.as_bytes()) {
                        Some(rest) => rest,
                        None => continue,
                    },
                };
                if take(raw, &mut malformed) && !credential.headers.contains(name) {
                    credential.headers.push(name.clone());
                }
            }
        } else if let Some(param) = &source.query {
            for raw in query_values(path, param) {
                if take(&raw, &mut malformed) && !credential.query_params.contains(param) {
                    credential.query_params.push(param.clone());
                }
            }
        }
    }
    if malformed {
        return Found::Malformed;
    }
    if conflicting {
        return Found::Conflicting;
    }
    match value {
        None => Found::Missing,
        Some(v) => {
            credential.value = v;
            Found::One(credential)
        }
    }
}

/// Names of the configured credential headers present in `headers` (for a
/// prefixed source, only when a value carries the prefix), whatever their
/// values: what a skipped request must not forward either.
pub fn carrying_headers(sources: &[KeySource], headers: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for source in sources {
        let Some(name) = &source.header else { continue };
        let carries = headers.iter().any(|(n, raw)| {
            n == name
                && source.value_prefix.as_ref().is_none_or(|prefix| {
                    strip_prefix_ignore_case(raw.trim_ascii_start(), prefix.trim_end().as_bytes())
                        .is_some()
                })
        });
        if carries && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// The credential itself: surrounding spaces trimmed, then 1..=max_len bytes
/// of visible ASCII (no spaces, no control characters, nothing non-ASCII).
fn clean(raw: &[u8], max_len: usize) -> Option<String> {
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty()
        || trimmed.len() > max_len
        || !trimmed.iter().all(|b| (0x21..0x7f).contains(b))
    {
        return None;
    }
    String::from_utf8(trimmed.to_vec()).ok()
}

fn strip_prefix_ignore_case<'a>(raw: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = raw.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| raw.get(prefix.len()..))
        .flatten()
}

/// Every value of `param` in the query of `path`, percent-decoded.
fn query_values(path: &str, param: &str) -> Vec<Vec<u8>> {
    let Some((_, query)) = path.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name.as_bytes()) == param.as_bytes())
                .then(|| percent_decode(value.as_bytes()))
        })
        .collect()
}

/// `path` without any `param=...` pair, for forwarding without the credential.
pub fn remove_query_params(path: &str, params: &[String]) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            let name = percent_decode(name.as_bytes());
            !params.iter().any(|p| p.as_bytes() == name.as_slice())
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let hex = (b == b'%')
            .then(|| input.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                out.push(if b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Vec<KeySource> {
        vec![
            KeySource::header("x-api-key"),
            KeySource {
                value_prefix: Some("Bearer ".into()),
                ..KeySource::header("authorization")
            },
            KeySource {
                query: Some("api_key".into()),
                ..KeySource::default()
            },
        ]
    }

    fn h(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn one(found: Found) -> Credential {
        match found {
            Found::One(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_source_alone() {
        let c = one(find(&sources(), &h(&[("x-api-key", b"k1")]), "/", 64));
        assert_eq!(
            (c.value.as_str(), c.headers.as_slice()),
            ("k1", &["x-api-key".to_string()][..])
        );
        let c = one(find(
            &sources(),
            &h(&[("authorization", b"bearer  k2 ")]),
            "/",
            64,
        ));
        assert_eq!(c.value, "k2");
        assert_eq!(c.headers, vec!["authorization".to_string()]);
        let c = one(find(&sources(), &[], "/mcp?a=1&api_key=k%2B3&b=2", 64));
        assert_eq!(c.value, "k+3");
        assert_eq!(c.query_params, vec!["api_key".to_string()]);
    }

    #[test]
    fn missing_and_foreign_schemes() {
        assert_eq!(find(&sources(), &[], "/", 64), Found::Missing);
        assert_eq!(
            find(
                &sources(),
                &h(&[("authorization", b"Basic dXNlcjpwdw==")]),
                "/",
                64
            ),
            Found::Missing
        );
        assert_eq!(
            find(&sources(), &h(&[("x-other", b"k")]), "/?api_keyx=1", 64),
            Found::Missing
        );
    }

    #[test]
    fn agreeing_sources_are_one_credential() {
        let c = one(find(
            &sources(),
            &h(&[
                ("x-api-key", b"k1"),
                ("authorization", b"Bearer k1"),
                ("x-api-key", b"k1"),
            ]),
            "/?api_key=k1",
            64,
        ));
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.query_params.len(), 1);
    }

    #[test]
    fn disagreeing_sources_conflict() {
        assert_eq!(
            find(
                &sources(),
                &h(&[("x-api-key", b"k1"), ("authorization", b"Bearer k2")]),
                "/",
                64
            ),
            Found::Conflicting
        );
        assert_eq!(
            find(
                &sources(),
                &h(&[("x-api-key", b"k1"), ("x-api-key", b"k2")]),
                "/",
                64
            ),
            Found::Conflicting
        );
        assert_eq!(
            find(&sources(), &h(&[("x-api-key", b"k1")]), "/?api_key=k2", 64),
            Found::Conflicting
        );
    }

    #[test]
    fn hostile_values_are_malformed() {
        for bad in [
            &b""[..],
            b"   ",
            b"k\x01ey",
            b"k\x7fey",
            b"k ey",
            b"k\xffey",
            b"\xc3\xa9",
        ] {
            assert_eq!(
                find(&sources(), &h(&[("x-api-key", bad)]), "/", 64),
                Found::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            find(&sources(), &h(&[("x-api-key", &[b'a'; 65])]), "/", 64),
            Found::Malformed
        );
        assert_eq!(
            find(&sources(), &h(&[("authorization", b"Bearer ")]), "/", 64),
            Found::Malformed
        );
        assert_eq!(find(&sources(), &[], "/?api_key=%00", 64), Found::Malformed);
        // A malformed copy wins over a good one: no guessing which one was meant.
        assert_eq!(
            find(
                &sources(),
                &h(&[("x-api-key", b"ok"), ("x-api-key", b"\x00")]),
                "/",
                64
            ),
            Found::Malformed
        );
    }

    #[test]
    fn headers_carrying_credentials_whatever_their_value() {
        let h = h(&[
            ("x-api-key", b"\xff"),
            ("authorization", b"Bearer x"),
            ("other", b"1"),
        ]);
        assert_eq!(
            carrying_headers(&sources(), &h),
            vec!["x-api-key".to_string(), "authorization".to_string()]
        );
        let basic = vec![("authorization".to_string(), b"Basic abc".to_vec())];
        assert!(carrying_headers(&sources(), &basic).is_empty());
    }

    #[test]
    fn query_credential_is_removed_from_the_path() {
        let p = vec!["api_key".to_string()];
        assert_eq!(remove_query_params("/mcp?api_key=k", &p), "/mcp");
        assert_eq!(
            remove_query_params("/mcp?a=1&api_key=k&b=2", &p),
            "/mcp?a=1&b=2"
        );
        assert_eq!(remove_query_params("/mcp?api%5Fkey=k&b", &p), "/mcp?b");
        assert_eq!(remove_query_params("/mcp", &p), "/mcp");
    }
}
