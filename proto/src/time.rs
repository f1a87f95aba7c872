//! Timestamps as RFC 3339 strings (UTC), without a date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `t`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (date, time) = civil(secs);
    format!("{date}T{time}.{:03}Z", since.subsec_millis())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `t`.
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (date, time) = civil(secs);
    format!("{date}T{time}Z")
}

/// The current time, [`rfc3339_millis`].
pub fn now() -> String {
    rfc3339_millis(SystemTime::now())
}

/// Parses what [`rfc3339_millis`] and [`rfc3339_seconds`] write (`YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction, `Z`); `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let nanos = match &s[19..s.len() - 1] {
        "" => 0,
        f if f.starts_with('.') && f.len() > 1 && f.len() <= 10 => {
            let digits = &f[1..];
            let n: u64 = digits.parse().ok()?;
            n * 10u64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // days-from-civil (the inverse of `civil`).
    let y = year as i64 - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// Date and time of day for Unix seconds (civil-from-days, proleptic Gregorian calendar).
fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(rfc3339_seconds(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339_millis(at(1_711_379_259, 42)),
            "2024-03-25T15:07:39.042Z"
        );
    }

    #[test]
    fn parses_what_it_writes() {
        for t in [0, 951_782_400, 1_711_379_259, 4_102_444_800] {
            let at = UNIX_EPOCH + Duration::from_secs(t) + Duration::from_millis(t % 1000);
            assert_eq!(parse_rfc3339(&rfc3339_millis(at)), Some(at));
            let secs = UNIX_EPOCH + Duration::from_secs(t);
            assert_eq!(parse_rfc3339(&rfc3339_seconds(at)), Some(secs));
        }
        for bad in [
            "",
            "2024-03-25",
            "2024-13-01T00:00:00Z",
            "2024-03-25T15:07:39",
            "x024-03-25T15:07:39Z",
            "2024-03-25T15:07:39.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
