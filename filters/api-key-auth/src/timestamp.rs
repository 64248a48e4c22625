//! RFC 3339 timestamps (`2026-12-31T23:59:59Z`) to Unix seconds, for the
//! `not_before` / `expires_at` of keys. Parsed once at config load; requests
//! only compare integers against the host clock.

/// Unix seconds of an RFC 3339 date-time (`Z` or `±HH:MM` offset, optional
/// fraction, which is dropped). `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = b.get(19..)?;
    if rest.first() == Some(&b'.') {
        let fraction = rest
            .iter()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if fraction == 0 {
            return None;
        }
        rest = rest.get(1 + fraction..)?;
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = digits(rest, 1, 2)?;
            let m = digits(rest, 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset)
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = b.get(start..start + len)?;
    slice.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_rfc3339("2026-12-31T23:59:59Z"), Some(1_798_761_599));
        assert_eq!(
            parse_rfc3339("2026-12-31T23:59:59.123456Z"),
            Some(1_798_761_599)
        );
        assert_eq!(
            parse_rfc3339("2027-01-01T01:00:00+01:00"),
            Some(1_798_761_600)
        );
        assert_eq!(
            parse_rfc3339("2026-12-31T22:00:00-02:00"),
            Some(1_798_761_600)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-12-31",
            "2026-12-31T23:59:59",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59+0100",
            "2026-12-31T23:59:59Zjunk",
            "20x6-12-31T23:59:59Z",
            "2026-12-31T23:59:59é",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
