//! Times as Docker engines write them (RFC 3339) and as berth prints them. Pure.
//!
//! The apply lock judges a lease by the clock of the engine that keeps it, never by the
//! clock of whoever reads it: these read the engine's times.

/// Unix seconds as an RFC 3339 UTC time (`2026-11-25T19:46:51Z`); 0 reads "an unknown time".
pub fn rfc3339(secs: u64) -> String {
    if secs == 0 {
        return "an unknown time".into();
    }
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// An RFC 3339 time (`2026-12-07T18:28:23.667884694Z`, `2026-12-07T19:28:23+01:00`) as Unix
/// seconds, the fraction dropped; `None` for anything else, or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b't') || at(10, b' '))) {
        return None;
    }
    if !(at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Up to 60: a leap second reads as the next second's start.
    if second > 60 {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += digits;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && at(i + 3, b':') => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, proleptic Gregorian
/// calendar); `month` 1 to 12, `day` 1 to 31.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
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
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(0), "an unknown time");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_636_011), "2026-11-25T19:46:51Z");
    }

    #[test]
    fn engine_times_parse_with_fractions_and_offsets() {
        assert_eq!(parse_rfc3339("2026-11-25T19:46:51Z"), Some(1_795_636_011));
        assert_eq!(
            parse_rfc3339("2026-11-25T19:46:51.667884694Z"),
            Some(1_795_636_011)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T20:46:51+01:00"),
            Some(1_795_636_011)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T14:16:51.5-05:30"),
            Some(1_795_636_011)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn anything_else_is_not_a_time() {
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T19:46:51",
            "2026-11-25T19:46:51.Z",
            "2026-13-25T19:46:51Z",
            "2026-11-25T24:46:51Z",
            "2026-11-25T19:46:51+0100",
            "2026-11-25T19:46:51Zjunk",
            "1969-12-31T23:59:59Z",
            "２026-11-25T19:46:51Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_agree() {
        for secs in [1, 86_399, 951_782_400, 1_795_636_011, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
    }
}
