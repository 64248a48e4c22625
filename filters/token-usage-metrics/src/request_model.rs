//! The `model` of an LLM request body, read as the body streams by.
//!
//! SDKs put `model` anywhere in the object, often after a long `messages`
//! array (openai-python and anthropic-sdk-python send it last), so a parse of
//! a capped prefix would miss it. This scanner walks the JSON bytes chunk by
//! chunk keeping only a few bytes of state, and captures the first top-level
//! `"model"` string. The filter stops feeding it at a byte budget; it never
//! holds the body and never delays it.

/// Longest model name kept.
pub const MAX_MODEL_LEN: usize = 128;
const KEY: &[u8] = b"model";

#[derive(Debug, Clone, Default)]
pub struct ModelScanner {
    /// Nesting depth of objects and arrays.
    depth: u32,
    started: bool,
    in_string: bool,
    escaped: bool,
    /// At depth 1, the next string is a key.
    expect_key: bool,
    /// The string being read is a depth-1 key / the wanted value.
    reading_key: bool,
    reading_value: bool,
    key: Vec<u8>,
    key_matches: bool,
    value: Vec<u8>,
    found: Option<String>,
    /// Not a JSON object: nothing to find.
    gave_up: bool,
}

impl ModelScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the model was found or the body cannot hold one.
    pub fn done(&self) -> bool {
        self.found.is_some() || self.gave_up
    }

    pub fn model(&self) -> Option<&str> {
        self.found.as_deref()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.done() {
                return;
            }
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.in_string {
            self.string_byte(b);
            return;
        }
        if !self.started {
            if b.is_ascii_whitespace() {
                return;
            }
            self.started = true;
            if b != b'{' {
                self.gave_up = true;
                return;
            }
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 {
                    if self.expect_key {
                        self.reading_key = true;
                        self.key.clear();
                    } else {
                        self.reading_value = self.key_matches;
                        self.value.clear();
                    }
                }
            }
            b'{' | b'[' => {
                self.depth = self.depth.saturating_add(1);
                if self.depth == 1 {
                    self.expect_key = true;
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    // The top-level object ended without a model.
                    self.gave_up = true;
                }
            }
            b',' if self.depth == 1 => {
                self.expect_key = true;
                self.key_matches = false;
            }
            _ => {}
        }
    }

    fn string_byte(&mut self, b: u8) {
        let literal = if self.escaped {
            self.escaped = false;
            true
        } else if b == b'\\' {
            self.escaped = true;
            return;
        } else {
            false
        };
        if b == b'"' && !literal {
            self.in_string = false;
            if self.reading_key {
                self.reading_key = false;
                self.expect_key = false;
                self.key_matches = self.key == KEY;
            } else if self.reading_value {
                self.reading_value = false;
                let model = String::from_utf8_lossy(&self.value).into_owned();
                if !model.is_empty() {
                    self.found = Some(model);
                }
            }
            return;
        }
        if self.reading_key && self.key.len() <= KEY.len() {
            self.key.push(b);
        } else if self.reading_value && self.value.len() < MAX_MODEL_LEN {
            self.value.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(body: &[u8]) -> Option<String> {
        let mut s = ModelScanner::new();
        s.push(body);
        s.model().map(String::from)
    }

    #[test]
    fn finds_model_after_long_messages_at_every_split() {
        let body = br#"{"messages":[{"role":"user","content":"say \"model\": \"fake\" {[}]"}],"stream":true,"model":"gpt-4o-mini","n":1}"#;
        assert_eq!(scan(body).as_deref(), Some("gpt-4o-mini"));
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            let mut s = ModelScanner::new();
            s.push(a);
            s.push(b);
            assert_eq!(s.model(), Some("gpt-4o-mini"), "cut at {cut}");
        }
    }

    #[test]
    fn only_top_level_string_values_count() {
        assert_eq!(
            scan(br#"{"meta":{"model":"inner"},"model":"outer"}"#).as_deref(),
            Some("outer")
        );
        assert_eq!(scan(br#"{"model":{"name":"x"},"other":"y"}"#), None);
        assert_eq!(
            scan(br#"{"models":"a","mode":"b","model":"c"}"#).as_deref(),
            Some("c")
        );
        assert_eq!(scan(br#"{"x":"model","y":"gpt"}"#), None);
        assert_eq!(
            scan(br#"{"model":"first","model":"second"}"#).as_deref(),
            Some("first")
        );
        assert_eq!(scan(br#"{"mo\"del":"x"}"#), None);
        assert_eq!(scan(br#"{"model":"a\"b"}"#).as_deref(), Some("a\"b"));
    }

    #[test]
    fn gives_up_on_non_objects_and_ends() {
        for body in [&b"[1,2]"[..], b"\"model\"", b"{}", b"{\"a\":1}"] {
            let mut s = ModelScanner::new();
            s.push(body);
            assert!(s.done(), "{body:?}");
            assert_eq!(s.model(), None);
        }
        let mut s = ModelScanner::new();
        s.push(b"  {\"messages\": [");
        assert!(!s.done());
    }

    #[test]
    fn long_values_are_capped_and_junk_is_safe() {
        let body = format!(r#"{{"model":"{}"}}"#, "m".repeat(1000));
        assert_eq!(scan(body.as_bytes()).map(|m| m.len()), Some(MAX_MODEL_LEN));
        let junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut s = ModelScanner::new();
        s.push(b"{");
        s.push(&junk);
        let _ = s.model();
    }
}
