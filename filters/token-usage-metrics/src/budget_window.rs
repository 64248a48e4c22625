//! Fixed budget windows in UTC: which window a time falls in, and when it
//! ends (for `Retry-After` and the reset headers).

use crate::budget_config::Window;

const DAY: u64 = 86_400;

/// The window `now_secs` falls in: its number (unique per window kind) and
/// the second it ends.
pub fn window_at(window: Window, now_secs: u64) -> (u64, u64) {
    let fixed = |len: u64| {
        let id = now_secs / len;
        (id, id.saturating_add(1).saturating_mul(len))
    };
    match window {
        Window::Minute => fixed(60),
        Window::Hour => fixed(3_600),
        Window::Day => fixed(DAY),
        Window::Month => {
            let (y, m, _) = civil_from_days(now_secs / DAY);
            let id = y.saturating_mul(12).saturating_add(m - 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (id, days_from_civil(ny, nm, 1).saturating_mul(DAY))
        }
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic
/// Gregorian (Howard Hinnant's algorithm, unsigned: dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year >= 1970, month 1-12, day) to days since 1970-01-01.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_end_on_their_boundary() {
        assert_eq!(window_at(Window::Minute, 125), (2, 180));
        assert_eq!(window_at(Window::Hour, 3_599), (0, 3_600));
        assert_eq!(window_at(Window::Day, DAY), (1, 2 * DAY));
    }

    #[test]
    fn calendar_months_end_on_the_first() {
        // 2026-12-02T10:00:00Z ends at 2027-01-01T00:00:00Z.
        let (id, end) = window_at(Window::Month, 1_796_205_600);
        assert_eq!(end, 1_798_761_600);
        assert_eq!(id, 2026 * 12 + 11);
        // 2024-02-29 (leap day) ends at 2024-03-01.
        assert_eq!(window_at(Window::Month, 1_709_208_000).1, 1_709_251_200);
        // The last second of a month is still that month.
        assert_eq!(window_at(Window::Month, 1_798_761_599).1, 1_798_761_600);
        assert_eq!(window_at(Window::Month, 1_798_761_600).0, 2027 * 12);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
