//! Logging set-up.
//!
//! `RUST_LOG` selects what is logged (default `info`); `log_format` selects `text` (default)
//! or `json` (one object per line, for log shippers).

use crate::env::{Env, EnvError};
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log_format`, declared once for every binary (read before the rest of the settings, so
/// that their errors are logged in that format).
#[derive(Debug, Clone, Copy, clap::Args)]
#[group(skip)]
pub struct Logging {
    /// Log lines: text or json (one object per line); RUST_LOG filters (default info).
    #[arg(long = "log_format", env = "log_format", default_value = "text",
          value_parser = parse_format)]
    pub log_format: LogFormat,
}

/// Reads `log_format` (`text` or `json`, default `text`).
pub fn log_format(env: &impl Env) -> Result<LogFormat, EnvError> {
    crate::settings::from_env::<Logging>(env).map(|l| l.log_format)
}

fn parse_format(v: &str) -> Result<LogFormat, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "text" | "plain" | "console" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".to_string()),
    }
}

/// Installs the global `tracing` subscriber. Safe to call more than once (later calls are
/// ignored), so tests that start several services in one process can call it freely.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: in a container they would end up in `docker logs` and
    // `/system/logs` as escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
