//! Settings declared once, with clap: each is a field of a `#[derive(clap::Args)]` struct
//! with `#[arg(long = "name", env = "name", default_value = "...", value_parser = ...)]`,
//! which gives its environment variable, its flag (`--name=value`), its default, its parser
//! and its `--help` line. The services' structs flatten the shared ones
//! ([`crate::jetstream::NatsConfig`], [`crate::auth::AuthConfig`], [`crate::listen::Bind`],
//! [`crate::callback_guard::CallbackGuard`], [`crate::telemetry::Logging`]).
//!
//! The values come from an [`Env`] (the process environment, or a map in tests), not from
//! clap's own reading of the process environment: an empty or blank variable counts as unset
//! (clap would hand `""` to the parser), and tests never touch the process environment. A
//! variable's value becomes the flag `--<long>=<value>` ahead of the command line, so a flag
//! given on the command line wins over the variable. A long alias of a flag is also read as
//! an older name of the variable (`nats_stream_replicas` for `nats_replicas`); the first one
//! set wins.
//!
//! Every error names the variable (the alias when that is what was set) and the value, as
//! [`EnvError`]; a value whose setting ends in `_url` is shown with its credentials redacted.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::env::{Env, EnvError, parse_size};

/// Settings that cannot be used: a bad value, or (from the command line) a bad argument.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable or flag holds a value that cannot be used.
    #[error(transparent)]
    Invalid(#[from] EnvError),
    /// The command line is not understood (clap's message, with usage).
    #[error("{0}")]
    Usage(String),
}

/// Reads `A` from `env` alone (services in tests, the shared structs' `from_env`).
pub fn from_env<A: Args + FromArgMatches>(env: &impl Env) -> Result<A, EnvError> {
    parse::<A>("ferry", env, std::iter::empty::<OsString>()).map_err(|err| match err {
        SettingsError::Invalid(e) => e,
        SettingsError::Usage(reason) => EnvError {
            name: "settings".into(),
            value: String::new(),
            reason,
        },
    })
}

/// Reads `A` from the command line `args` (without the program name) and `env`; a flag wins
/// over its variable, a variable over the default.
pub fn parse<A: Args + FromArgMatches>(
    program: &'static str,
    env: &impl Env,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<A, SettingsError> {
    let declared = A::augment_args(Command::new(program));
    let mut argv: Vec<OsString> = vec![program.into()];
    let mut names: HashMap<String, String> = HashMap::new();
    for arg in declared.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let mut candidates: Vec<String> = Vec::new();
        candidates.extend(arg.get_env().and_then(|e| e.to_str()).map(String::from));
        candidates.extend(
            arg.get_all_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(String::from),
        );
        let found = candidates
            .iter()
            .find_map(|n| env.get(n).map(|v| (n.clone(), v)));
        let name = match found {
            Some((name, value)) => {
                argv.push(format!("--{long}={value}").into());
                name
            }
            None => candidates
                .first()
                .cloned()
                .unwrap_or_else(|| long.to_string()),
        };
        names.insert(long.to_string(), name);
    }
    argv.extend(args.into_iter().map(Into::into));
    // Values come from `env` only: clap reading the process environment itself would see
    // empty variables as values.
    let command = declared
        .mut_args(|a| a.env(None::<&str>))
        .args_override_self(true)
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut matches: ArgMatches = command
        .try_get_matches_from(argv)
        .map_err(|e| error(e, &names))?;
    A::from_arg_matches_mut(&mut matches).map_err(|e| error(e, &names))
}

/// The `--help` text of `A`: `about`, every setting with its variable and default, `after`.
pub fn help<A: Args>(program: &'static str, about: &'static str, after: &'static str) -> String {
    A::augment_args(Command::new(program))
        .about(about)
        .after_help(after)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .term_width(100)
        .mut_args(|a| {
            let value = a.get_long().unwrap_or_default().to_uppercase();
            // The process's values are not shown: `nats_url` may hold a password.
            a.value_name(value).hide_env_values(true)
        })
        .help_template(
            "{about}\n\n{usage-heading} {usage}\n\n\
             Settings (the environment variable, or the flag, which wins):\n\
             {options}\n{after-help}\n",
        )
        .render_help()
        .to_string()
}

/// The clap [`Command`] of `A`, as `--help` shows it (for tests comparing it with the README).
pub fn command<A: Args>(program: &'static str) -> Command {
    A::augment_args(Command::new(program))
}

fn error(err: clap::Error, names: &HashMap<String, String>) -> SettingsError {
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match err.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            let long = arg
                .trim_start_matches('-')
                .split([' ', '='])
                .next()
                .unwrap_or_default();
            let name = names.get(long).cloned().unwrap_or_else(|| long.to_string());
            let mut value = context(ContextKind::InvalidValue).unwrap_or_default();
            if name.ends_with("_url") {
                value = crate::redact::url(&value);
            }
            let reason = match std::error::Error::source(&err) {
                Some(source) => source.to_string(),
                None => "not a valid value".to_string(),
            };
            SettingsError::Invalid(EnvError {
                name,
                value,
                reason,
            })
        }
        _ => SettingsError::Usage(err.render().to_string().trim_end().to_string()),
    }
}

// === value parsers: each trims the value first, as the variables always were ===

/// A number (or anything `FromStr`).
pub fn number<T>(v: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    v.trim().parse::<T>().map_err(|e| e.to_string())
}

/// A boolean: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case).
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// A duration such as `200ms`, `5s`, `2m`, `1h30m` or a bare number of seconds.
pub fn duration(v: &str) -> Result<Duration, String> {
    ferry_proto::duration::parse(v.trim()).map_err(|e| e.to_string())
}

/// A duration greater than zero.
pub fn positive_duration(v: &str) -> Result<Duration, String> {
    match duration(v)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

/// A size in bytes (`524288`, `512KiB`, `1MB`, `512k`; binary units either way).
pub fn size(v: &str) -> Result<usize, String> {
    parse_size(v).ok_or_else(|| "expected a size in bytes, e.g. 524288, 512KiB or 1MB".into())
}

/// A size in bytes greater than zero.
pub fn positive_size(v: &str) -> Result<usize, String> {
    match size(v)? {
        0 => Err("must be greater than zero".to_string()),
        n => Ok(n),
    }
}

/// An IP address (no host names).
pub fn ip(v: &str) -> Result<std::net::IpAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::".to_string())
}

pub mod readme;

#[cfg(test)]
mod tests;
