//! Client-controlled text made safe for logs and filter state.

/// A client-supplied value made safe for any log sink: invalid UTF-8 and
/// control characters (newlines, escapes, NUL, DEL, C1, line separators)
/// become U+FFFD, surrounding whitespace goes, and the result is cut to `max`
/// bytes on a character boundary. Quotes stay: Envoy's JSON formatter escapes
/// them. Empty results are `None`.
pub fn clean(value: &[u8], max: usize) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.trim().chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_separators_are_replaced_and_length_capped() {
        assert_eq!(
            clean(b"a\x1b[31m\r\nb\xe2\x80\xa8c", 64).as_deref(),
            Some("a\u{FFFD}[31m\u{FFFD}\u{FFFD}b\u{FFFD}c")
        );
        assert_eq!(clean("é".repeat(10).as_bytes(), 5).as_deref(), Some("éé"));
        assert_eq!(clean(b"  ", 5), None);
        assert_eq!(clean(b"\xff", 5).as_deref(), Some("\u{FFFD}"));
    }
}
