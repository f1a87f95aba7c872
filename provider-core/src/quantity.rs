//! Kubernetes resource quantities, as OpenFaaS's `limits` and `requests` use them.
//!
//! Memory is a number of bytes with an optional suffix: decimal `k`, `M`, `G`, `T`, `P`, `E`
//! (powers of 1000), binary `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei` (powers of 1024), or an
//! exponent `e<n>`: `128M` = 128·10⁶, `40Mi` = 40·2²⁰, `1.5Gi`, `129e6`, `134217728`.
//! CPU is a number of CPUs, or thousandths of one with `m`: `100m`, `0.5`, `2`.
//! Fractions round up, as Kubernetes does. Anything else is an error that says what was
//! expected.

/// A quantity that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(String);

/// Bytes of a memory quantity such as `128M`, `40Mi` or `1Gi`.
pub fn parse_memory(s: &str) -> Result<u64, QuantityError> {
    let (num, den) = parse(s, Kind::Memory)?;
    let bytes = num.div_ceil(den);
    u64::try_from(bytes)
        .ok()
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or_else(|| QuantityError(format!("{s:?} is too large")))
}

/// Nano-CPUs (10⁹ per CPU) of a CPU quantity such as `100m`, `0.5` or `2`.
pub fn parse_cpu(s: &str) -> Result<u64, QuantityError> {
    let (num, den) = parse(s, Kind::Cpu)?;
    let nanos = num
        .checked_mul(1_000_000_000)
        .map(|n| n.div_ceil(den))
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| i64::try_from(*n).is_ok());
    nanos.ok_or_else(|| QuantityError(format!("{s:?} is too large")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Cpu,
}

/// Largest number of digits accepted, so the arithmetic below stays within `u128`.
const MAX_DIGITS: usize = 24;

/// The quantity as the fraction `num / den` of base units (bytes, CPUs).
fn parse(s: &str, kind: Kind) -> Result<(u128, u128), QuantityError> {
    let expected = match kind {
        Kind::Memory => {
            "expected bytes with an optional suffix k, M, G, T, Ki, Mi, Gi, Ti (e.g. 128M, 40Mi)"
        }
        Kind::Cpu => "expected CPUs, or thousandths of a CPU with m (e.g. 0.5, 2, 100m)",
    };
    let bad =
        |why: &str| QuantityError(format!("{s:?} is not a valid quantity ({why}); {expected}"));
    let s = s.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.starts_with('-') {
        return Err(bad("negative"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(bad("no number"));
    }
    if int.len() + frac.len() > MAX_DIGITS {
        return Err(bad("too many digits"));
    }
    let digits: u128 = format!("{int}{frac}")
        .parse()
        .map_err(|_| bad("no number"))?;
    let mut den = 10u128.pow(frac.len() as u32);
    let (mul, div) = multiplier(suffix, kind).ok_or_else(|| match (kind, suffix) {
        (Kind::Memory, "m") => bad("m means thousandths; did you mean M or Mi?"),
        (_, "K") => bad("unknown suffix K; did you mean k or Ki?"),
        _ => bad(&format!("unknown suffix {suffix:?}")),
    })?;
    den = den.checked_mul(div).ok_or_else(|| bad("too small"))?;
    let num = digits.checked_mul(mul).ok_or_else(|| bad("too large"))?;
    Ok((num, den))
}

/// `(multiply, divide)` for a suffix.
fn multiplier(suffix: &str, kind: Kind) -> Option<(u128, u128)> {
    let decimal = |p: u32| Some((1000u128.pow(p), 1));
    let binary = |p: u32| Some((1024u128.pow(p), 1));
    match (suffix, kind) {
        ("", _) => Some((1, 1)),
        ("k", _) => decimal(1),
        ("M", _) => decimal(2),
        ("G", _) => decimal(3),
        ("T", _) => decimal(4),
        ("P", _) => decimal(5),
        ("E", _) => decimal(6),
        ("Ki", _) => binary(1),
        ("Mi", _) => binary(2),
        ("Gi", _) => binary(3),
        ("Ti", _) => binary(4),
        ("Pi", _) => binary(5),
        ("Ei", _) => binary(6),
        ("m", Kind::Cpu) => Some((1, 1_000)),
        ("u", Kind::Cpu) => Some((1, 1_000_000)),
        ("n", Kind::Cpu) => Some((1, 1_000_000_000)),
        (e, _) if e.len() > 1 && e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            let pow = 10u128.checked_pow(exp.unsigned_abs())?;
            if exp.unsigned_abs() > 30 {
                return None;
            }
            Some(if exp >= 0 { (pow, 1) } else { (1, pow) })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities() {
        let cases = [
            ("128M", 128_000_000),
            ("40Mi", 40 * 1024 * 1024),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("512k", 512_000),
            ("64Ki", 65_536),
            ("134217728", 134_217_728),
            ("129e6", 129_000_000),
            ("0.5", 1),
            (".5Mi", 524_288),
            ("2T", 2_000_000_000_000),
            (" 10Mi ", 10_485_760),
            ("0", 0),
        ];
        for (s, want) in cases {
            assert_eq!(parse_memory(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn memory_garbage_is_rejected_with_a_reason() {
        for bad in [
            "", "abc", "12XB", "-1Mi", "1.2.3M", "Mi", "1 Mi", "10MB", "1e", "1e99", ".",
        ] {
            let e = parse_memory(bad).unwrap_err().to_string();
            assert!(e.contains("expected bytes"), "{bad}: {e}");
        }
        assert!(
            parse_memory("100m")
                .unwrap_err()
                .0
                .contains("did you mean M or Mi")
        );
        assert!(
            parse_memory("100K")
                .unwrap_err()
                .0
                .contains("did you mean k or Ki")
        );
        assert!(
            parse_memory("99999999999999Ei")
                .unwrap_err()
                .0
                .contains("too large")
        );
    }

    #[test]
    fn cpu_quantities() {
        let cases = [
            ("100m", 100_000_000),
            ("0.5", 500_000_000),
            ("2", 2_000_000_000),
            ("1.25", 1_250_000_000),
            ("250m", 250_000_000),
            ("0.01", 10_000_000),
            ("1500u", 1_500_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_cpu(s), Ok(want), "{s}");
        }
        for bad in ["", "one", "1c", "-0.5", "100 m", "1Ki0"] {
            let e = parse_cpu(bad).unwrap_err().to_string();
            assert!(e.contains("expected CPUs"), "{bad}: {e}");
        }
    }
}
