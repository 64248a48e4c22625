//! Name patterns: an exact name, or a glob where `*` matches any run of
//! characters (none included). `delete_*` is a prefix, `*_debate` a suffix,
//! `debate://*/transcript` both. Nothing else is special, so a tool named
//! `a?b` or `[x]` matches only itself.

/// True when `name` matches `pattern`. Linear in practice: greedy matching
/// with one backtrack point (the last `*`), as shells do.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte and retry.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exact_prefix_suffix_and_inner() {
        assert!(matches("get_debate", "get_debate"));
        assert!(!matches("get_debate", "get_debates"));
        assert!(!matches("get_debate", "get_debat"));
        assert!(matches("delete_*", "delete_debate"));
        assert!(matches("delete_*", "delete_"));
        assert!(!matches("delete_*", "undelete_x"));
        assert!(matches("*_debate", "delete_debate"));
        assert!(matches("debate://*/transcript", "debate://42/transcript"));
        assert!(!matches(
            "debate://*/transcript",
            "debate://42/transcript/x"
        ));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("**", "x"));
    }

    #[test]
    fn nothing_but_star_is_special() {
        assert!(matches("a?b", "a?b"));
        assert!(!matches("a?b", "axb"));
        assert!(!matches("[x]", "x"));
    }

    #[test]
    fn case_matters() {
        assert!(!matches("Delete_*", "delete_debate"));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let name = "a".repeat(256);
        let pattern = format!("{}b", "*a".repeat(60));
        assert!(!matches(&pattern, &name));
    }
}
