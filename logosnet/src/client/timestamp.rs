//! `--timestamps`: the local time of day put before every room line, as
//! `[HH:MM:SS] `. The time zone is the system's (`TZ`, else
//! `/etc/localtime`), read by `chrono`: the standard library has no local
//! time, and chrono reads the zone without the thread-safety caveats of
//! calling `localtime_r` by hand.

use chrono::{Local, NaiveTime, Timelike};

/// Columns the stamp takes before a line: `[HH:MM:SS] `.
pub(crate) const STAMP_COLUMNS: usize = "[00:00:00] ".len();

/// `line` with the local time now before it.
pub(crate) fn stamped(line: &str) -> String {
    stamped_at(Local::now().time(), line)
}

/// `line` with `time` before it, as `[HH:MM:SS] line`.
fn stamped_at(time: NaiveTime, line: &str) -> String {
    format!(
        "[{:02}:{:02}:{:02}] {line}",
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_two_digit_hours_minutes_seconds() {
        let time = |h, m, s| NaiveTime::from_hms_opt(h, m, s).unwrap();
        assert_eq!(
            stamped_at(time(9, 5, 7), "a room line"),
            "[09:05:07] a room line"
        );
        assert_eq!(stamped_at(time(23, 59, 59), ""), "[23:59:59] ");
    }

    #[test]
    fn now_has_the_shape() {
        let line = stamped("x");
        let bytes = line.as_bytes();
        assert_eq!(line.len(), "[00:00:00] x".len());
        assert_eq!(
            (bytes[0], bytes[3], bytes[6], bytes[9]),
            (b'[', b':', b':', b']')
        );
    }
}
