//! Durations as OpenFaaS writes them.
//!
//! Environment variables, labels and annotations carry durations in Go's notation (`200ms`,
//! `5s`, `2m`, `1h30m`, `1.5s`); OpenFaaS also accepts a bare number, meaning seconds.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (examples: 500ms, 30s, 2m, 1h30m, or 10 for seconds)"
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses `200ms`, `5s`, `2m`, `1h30m`, `1.5s`, `90` (seconds) or `0`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs).ok_or_else(|| err("out of range"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    from_secs(total).ok_or_else(|| err("out of range"))
}

fn from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

/// Formats a duration the way [`parse`] reads it back, e.g. `1m30s`, `250ms`, `0s`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_bare_seconds() {
        let cases = [
            ("200ms", Duration::from_millis(200)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("5m5s", Duration::from_secs(305)),
            ("1.5s", Duration::from_millis(1500)),
            ("90", Duration::from_secs(90)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_helpful_message() {
        for input in ["", "s", "5x", "-5s", "1h-3m", "abc"] {
            let e = parse(input).unwrap_err();
            assert!(e.to_string().contains("examples"), "{input}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for d in [0, 250, 1000, 65_000, 5_400_000, 3_600_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }
}
