//! Path patterns that capture the debate id: `/debates/{debate_id}`,
//! `/api/*/debates/{debate_id}/arguments`.
//!
//! Segment by segment: a literal must match exactly, `*` matches any one
//! segment, `{debate_id}` captures one. A pattern matches the start of the
//! path, so `/debates/{debate_id}` also covers `/debates/d-42/votes`. No
//! regexes: a handful of string compares per request.

const CAPTURE: &str = "{debate_id}";

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Any,
    Capture,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Compiles a pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let rest = pattern
            .strip_prefix('/')
            .ok_or_else(|| format!("'{pattern}' must start with /"))?;
        if pattern.contains(['?', '#']) {
            return Err(format!("'{pattern}' must not contain ? or #"));
        }
        let mut segments = Vec::new();
        for raw in rest.trim_end_matches('/').split('/') {
            segments.push(match raw {
                "" => return Err(format!("'{pattern}' has an empty segment")),
                "*" => Segment::Any,
                CAPTURE => Segment::Capture,
                _ if raw.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "'{pattern}': segment '{raw}' must be a literal, * or {CAPTURE}"
                    ))
                }
                _ => Segment::Literal(raw.to_string()),
            });
        }
        match segments.iter().filter(|s| **s == Segment::Capture).count() {
            1 => Ok(Self { segments }),
            _ => Err(format!("'{pattern}' must contain {CAPTURE} exactly once")),
        }
    }

    /// The captured segment when `path` (query string allowed) starts with
    /// this pattern.
    pub fn capture<'p>(&self, path: &'p str) -> Option<&'p str> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut parts = path.strip_prefix('/')?.split('/');
        let mut captured = None;
        for segment in &self.segments {
            let part = parts.next().filter(|p| !p.is_empty())?;
            match segment {
                Segment::Literal(l) if l != part => return None,
                Segment::Capture => captured = Some(part),
                _ => {}
            }
        }
        captured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(pattern: &str, path: &str) -> Option<String> {
        PathPattern::parse(pattern)
            .unwrap()
            .capture(path)
            .map(str::to_string)
    }

    #[test]
    fn captures_at_the_start_of_the_path() {
        let p = "/debates/{debate_id}";
        assert_eq!(cap(p, "/debates/d-42").as_deref(), Some("d-42"));
        assert_eq!(cap(p, "/debates/d-42/").as_deref(), Some("d-42"));
        assert_eq!(cap(p, "/debates/d-42/arguments/7").as_deref(), Some("d-42"));
        assert_eq!(cap(p, "/debates/d-42?api_key=x").as_deref(), Some("d-42"));
        assert_eq!(cap(p, "/debates/d-42#frag").as_deref(), Some("d-42"));
    }

    #[test]
    fn misses() {
        let p = "/debates/{debate_id}";
        for path in [
            "/debates",
            "/debates/",
            "/debates//x",
            "/debate/d-1",
            "/Debates/d-1",
            "/x/debates/d-1",
            "debates/d-1",
            "",
            "*",
        ] {
            assert_eq!(cap(p, path), None, "{path}");
        }
    }

    #[test]
    fn wildcards_and_inner_captures() {
        let p = "/api/*/debates/{debate_id}/arguments";
        assert_eq!(
            cap(p, "/api/v2/debates/d-7/arguments").as_deref(),
            Some("d-7")
        );
        assert_eq!(cap(p, "/api/v2/debates/d-7/votes"), None);
        assert_eq!(cap(p, "/api/v2/debates/d-7"), None);
        assert_eq!(cap("/{debate_id}", "/d-1/x").as_deref(), Some("d-1"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (pattern, says) in [
            ("debates/{debate_id}", "must start with /"),
            ("/debates/*", "exactly once"),
            ("/{debate_id}/{debate_id}", "exactly once"),
            ("/debates//{debate_id}", "empty segment"),
            ("/debates/{id}", "must be a literal"),
            ("/debates/x*/{debate_id}", "must be a literal"),
            ("/debates/{debate_id}?x", "must not contain"),
        ] {
            let err = PathPattern::parse(pattern).unwrap_err();
            assert!(err.contains(says), "{pattern}: {err}");
        }
    }
}
