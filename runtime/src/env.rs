//! Configuration from environment variables.
//!
//! Binaries read their settings through the [`Env`] trait rather than `std::env` directly,
//! so a test hands a `HashMap` to the same code path instead of mutating the process
//! environment (which `clippy.toml` forbids). Each parser names the variable and the
//! offending value in its error, so a typo in a compose file fails start-up with a message
//! that says which line to fix.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

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

/// The first of `names` that is set (for variables with aliases, e.g. `upstream_url` and
/// `http_upstream_url`).
pub fn first(env: &impl Env, names: &[&str]) -> Option<(String, String)> {
    names
        .iter()
        .find_map(|n| env.get(n).map(|v| (n.to_string(), v)))
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

/// A string variable, or `default`.
pub fn string_or(env: &impl Env, name: &str, default: &str) -> String {
    env.get(name).unwrap_or_else(|| default.to_string())
}

/// A number (or anything `FromStr`), or `default`.
pub fn number_or<T>(env: &impl Env, name: &str, default: T) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: Display,
{
    parse_or(env, name, default, |v| {
        v.parse::<T>().map_err(|e| e.to_string())
    })
}

/// A boolean: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case), or `default`.
pub fn bool_or(env: &impl Env, name: &str, default: bool) -> Result<bool, EnvError> {
    parse_or(env, name, default, parse_bool)
}

/// A duration such as `200ms`, `5s`, `2m`, `1h30m` or a bare number of seconds, or `default`.
pub fn duration_or(env: &impl Env, name: &str, default: Duration) -> Result<Duration, EnvError> {
    parse_or(env, name, default, |v| {
        ferry_proto::duration::parse(v).map_err(|e| e.to_string())
    })
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// A duration greater than zero from variable `name`, or `default` when it is unset.
pub fn positive_duration_or(
    env: &impl Env,
    name: &str,
    default: Duration,
) -> Result<Duration, EnvError> {
    parse_or(env, name, default, |v| {
        match ferry_proto::duration::parse(v) {
            Ok(d) if d.is_zero() => Err("must be greater than zero".to_string()),
            Ok(d) => Ok(d),
            Err(err) => Err(err.to_string()),
        }
    })
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
        assert_eq!(number_or(&e, "a", 7u32), Ok(7));
        assert_eq!(bool_or(&e, "b", true), Ok(true));
        assert_eq!(string_or(&e, "missing", "x"), "x");
    }

    #[test]
    fn values_are_parsed_and_errors_name_the_variable() {
        let e = env(&[("n", "12"), ("t", "1m5s"), ("b", "Yes"), ("bad", "twelve")]);
        assert_eq!(number_or(&e, "n", 0u32), Ok(12));
        assert_eq!(
            duration_or(&e, "t", Duration::ZERO),
            Ok(Duration::from_secs(65))
        );
        assert_eq!(bool_or(&e, "b", false), Ok(true));
        let err = number_or(&e, "bad", 0u32).unwrap_err();
        assert_eq!(err.name, "bad");
        assert!(
            err.to_string().starts_with("bad=\"twelve\" is not valid"),
            "{err}"
        );
    }

    #[test]
    fn first_returns_the_first_alias_that_is_set() {
        let e = env(&[("http_upstream_url", "http://127.0.0.1:3000")]);
        assert_eq!(
            first(&e, &["upstream_url", "http_upstream_url"]),
            Some(("http_upstream_url".into(), "http://127.0.0.1:3000".into()))
        );
    }
}
