//! Configuration from environment variables.
//!
//! Binaries read their settings through the [`Env`] trait rather than `std::env` directly,
//! so a test hands a `HashMap` to the same code path instead of mutating the process
//! environment (which `clippy.toml` forbids). The settings themselves are declared with clap
//! ([`crate::settings`]), which reads them from an [`Env`]. Each parser names the variable and the
//! offending value in its error, so a typo in a compose file fails start-up with a message
//! that says which line to fix.

use std::collections::HashMap;

/// A source of configuration strings.
pub trait Env {
    /// The value of `name`, if set. Empty values count as unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
}

impl Env for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.to_string())
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?} is not valid: {reason}")]
pub struct EnvError {
    /// The variable's name.
    pub name: String,
    /// The value found.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Parses `name` with `parse`, or returns `default` when it is unset.
pub fn parse_or<T>(
    env: &impl Env,
    name: &str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, EnvError> {
    match env.get(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|reason| EnvError {
            name: name.to_string(),
            value,
            reason,
        }),
    }
}

/// `524288`, `512KiB`, `512KB`, `1MiB`, `1MB`, `512k`: binary units either way, since
/// nobody sizes message payloads in powers of ten.
pub fn parse_size(v: &str) -> Option<usize> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn unset_and_empty_values_use_the_default() {
        let e = env(&[("a", ""), ("b", "  ")]);
        let parse = |v: &str| v.parse::<u32>().map_err(|e| e.to_string());
        assert_eq!(parse_or(&e, "a", 7u32, parse), Ok(7));
        assert_eq!(parse_or(&e, "b", 7u32, parse), Ok(7));
        assert_eq!(parse_or(&e, "missing", 7u32, parse), Ok(7));
    }

    #[test]
    fn values_are_parsed_and_errors_name_the_variable() {
        let e = env(&[("n", " 12 "), ("bad", "twelve")]);
        let parse = |v: &str| v.parse::<u32>().map_err(|e| e.to_string());
        assert_eq!(parse_or(&e, "n", 0u32, parse), Ok(12));
        let err = parse_or(&e, "bad", 0u32, parse).unwrap_err();
        assert_eq!(err.name, "bad");
        assert!(
            err.to_string().starts_with("bad=\"twelve\" is not valid"),
            "{err}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("524288"), Some(524288));
        assert_eq!(parse_size("512KiB"), Some(524288));
        assert_eq!(parse_size("512 kb"), Some(524288));
        assert_eq!(parse_size("2m"), Some(2 * 1024 * 1024));
        assert_eq!(parse_size("KiB"), None);
        assert_eq!(parse_size("1GiB"), None);
    }
}
