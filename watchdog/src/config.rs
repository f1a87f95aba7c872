//! Configuration from of-watchdog's environment variables.
//!
//! Every variable keeps of-watchdog's name, alias and default, or in `mode=classic` the
//! classic watchdog's (see the crate docs for the table), declared once in [`Settings`]
//! (clap). [`Config::from_env`] reads them through [`Env`], so tests pass a map instead of
//! touching the process environment, and every error names the variable to fix.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ferry_runtime::env::{Env, EnvError};
use http::Uri;

/// Port the watchdog listens on unless `port` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;
/// Port of `GET /metrics` unless `metrics_port` says otherwise (of-watchdog's fixed 8081).
pub const DEFAULT_METRICS_PORT: u16 = 8081;
/// Default of `read_timeout`, `write_timeout` and `exec_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Response `Content-Type` of the fork modes unless `content_type` says otherwise (classic
/// mode has no default: it answers with the request's `Content-Type`, or sniffs the output).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Name of the lock file written into the temporary directory (`/tmp/.lock`).
pub const LOCK_FILE_NAME: &str = ".lock";

/// The path of the lock file: `.lock` in [`std::env::temp_dir`] (`/tmp/.lock` normally).
pub fn default_lock_path() -> PathBuf {
    std::env::temp_dir().join(LOCK_FILE_NAME)
}

/// How the function process is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `fprocess` is started once and serves HTTP at `upstream_url`; requests are proxied.
    Http,
    /// `fprocess` is forked per request; stdin and stdout are streamed (the default).
    Streaming,
    /// `fprocess` is forked per request; stdout is buffered and returned when it exits.
    Serializing,
    /// The classic watchdog: forked per request for every path but `/_/health` (there is no
    /// `/_/ready`), the body buffered to stdin, stdout (and stderr) collected.
    Classic,
}

impl Mode {
    /// The name used in the `mode` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Streaming => "streaming",
            Mode::Serializing => "serializing",
            Mode::Classic => "classic",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Mode::Http),
            "streaming" => Ok(Mode::Streaming),
            "serializing" => Ok(Mode::Serializing),
            "classic" => Ok(Mode::Classic),
            "static" | "inproc" | "afterburn" => Err(format!(
                "mode {s:?} is not supported; use http, streaming, serializing or classic"
            )),
            _ => Err("expected one of http, streaming, serializing, classic".to_string()),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A variable is set to a value that cannot be used.
    #[error(transparent)]
    Invalid(#[from] EnvError),
    /// A required variable is not set.
    #[error("{name} is required: {hint}")]
    Missing {
        /// The variable (with its alias, if any).
        name: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
}

/// Everything the watchdog needs to run. Build it with [`Config::from_env`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `fprocess` as written.
    pub fprocess: String,
    /// `fprocess` split into program and arguments.
    pub command: Vec<String>,
    /// `mode`.
    pub mode: Mode,
    /// `upstream_url` (http mode only): scheme and authority, plus an optional base path
    /// without a trailing `/`. `localhost` is replaced by `127.0.0.1`, because a static
    /// binary in a `FROM scratch` image has no resolver configuration.
    pub upstream_url: Option<Uri>,
    /// `read_timeout`: the longest a client may take to send a request's headers (and the
    /// longest an idle keep-alive connection is kept). `None` when set to 0.
    pub read_timeout: Option<Duration>,
    /// `write_timeout`: the longest a response may take, from the end of the request's
    /// headers to its last byte; also the drain budget at shutdown. Always > 0.
    pub write_timeout: Duration,
    /// `exec_timeout`: the longest the function may take per request. `None` when set to 0.
    pub exec_timeout: Option<Duration>,
    /// `healthcheck_interval`: how long health reports 503 before the listener closes.
    pub healthcheck_interval: Duration,
    /// `port`.
    pub port: u16,
    /// `max_inflight`: concurrent requests allowed; 0 means unlimited.
    pub max_inflight: usize,
    /// `content_type`: response `Content-Type` in the fork modes. Empty (classic mode's
    /// default): the request's `Content-Type`, else one sniffed from the output.
    pub content_type: String,
    /// `suppress_lock`: do not write the lock file.
    pub suppress_lock: bool,
    /// Where the lock file goes (not an env var: `/tmp/.lock`, changed only by tests).
    pub lock_path: PathBuf,
    /// `ready_path`: when set, readiness asks the function at this path.
    pub ready_path: Option<String>,
    /// `prefix_logs`: prefix the function's log lines with time and stream name.
    pub prefix_logs: bool,
    /// `http_buffer_req_body` / `buffer_http`: buffer request bodies before proxying.
    pub buffer_request_body: bool,
    /// `log_callid`: add the `X-Call-Id` to request log lines.
    pub log_callid: bool,
    /// `metrics_port` (8081): where the binary serves `GET /metrics`; 0 turns it off.
    pub metrics_port: u16,
    /// `combine_output` (classic mode, default true): stderr goes into the response with
    /// stdout instead of to the log.
    pub combine_output: bool,
    /// `cgi_headers` (classic mode, default true): pass the `Http_*` variables.
    pub cgi_headers: bool,
    /// `write_debug` (classic mode, default false): copy the function's output to the
    /// watchdog's stdout and log failures in detail.
    pub write_debug: bool,
}

impl Config {
    /// Reads the configuration from `env`, applying of-watchdog's defaults.
    pub fn from_env(env: &impl Env) -> Result<Config, ConfigError> {
        Config::resolve(ferry_runtime::settings::from_env(env)?)
    }

    /// The configuration `s` gives: the required variables checked, and the defaults that
    /// depend on the mode or on `write_timeout` applied.
    pub fn resolve(s: Settings) -> Result<Config, ConfigError> {
        let fprocess = s.fprocess.ok_or(ConfigError::Missing {
            name: "fprocess (or function_process)",
            hint: "the command that runs the function, e.g. fprocess=\"node index.js\"",
        })?;
        if s.mode == Mode::Http && s.upstream_url.is_none() {
            return Err(ConfigError::Missing {
                name: "upstream_url (or http_upstream_url)",
                hint: "mode=http proxies to the function's own server, e.g. \
                       upstream_url=http://127.0.0.1:5000",
            });
        }
        let classic = s.mode == Mode::Classic;
        if classic {
            reject_marshal_request(&s.marshal_request)?;
        }
        // The classic watchdog has no exec_timeout by default and no fixed content type.
        let (exec_default, content_type_default) = match classic {
            true => (Duration::ZERO, ""),
            false => (DEFAULT_TIMEOUT, DEFAULT_CONTENT_TYPE),
        };
        if s.metrics_port != 0 && s.metrics_port == s.port {
            return Err(EnvError {
                name: "metrics_port".into(),
                value: s.metrics_port.to_string(),
                reason: "must differ from port (0 turns metrics off)".into(),
            }
            .into());
        }
        let non_zero = |d: Duration| (!d.is_zero()).then_some(d);
        Ok(Config {
            fprocess: fprocess.line,
            command: fprocess.command,
            mode: s.mode,
            upstream_url: s.upstream_url,
            read_timeout: non_zero(s.read_timeout),
            write_timeout: s.write_timeout,
            exec_timeout: non_zero(s.exec_timeout.unwrap_or(exec_default)),
            healthcheck_interval: s.healthcheck_interval.unwrap_or(s.write_timeout),
            port: s.port,
            max_inflight: s.max_inflight,
            content_type: s
                .content_type
                .unwrap_or_else(|| content_type_default.to_string()),
            suppress_lock: s.suppress_lock,
            lock_path: default_lock_path(),
            ready_path: s.ready_path,
            prefix_logs: s.prefix_logs,
            buffer_request_body: s.http_buffer_req_body,
            log_callid: s.log_callid,
            metrics_port: s.metrics_port,
            combine_output: s.combine_output,
            cgi_headers: s.cgi_headers,
            write_debug: s.write_debug,
        })
    }
}

/// The classic watchdog's `marshal_request=true` (the request as JSON on stdin) is not
/// implemented: refuse to start rather than hand the function a body it does not expect.
fn reject_marshal_request(value: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| EnvError {
        name: "marshal_request".into(),
        value: value.to_string(),
        reason,
    };
    if ferry_runtime::settings::boolean(value).map_err(invalid)? {
        return Err(invalid(
            "marshalling requests to JSON is not supported by ferry's watchdog; \
             unset it: the function then reads the raw body on stdin and the headers \
             from the Http_* variables (cgi_headers)"
                .into(),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn parse_upstream(value: &str) -> Result<Uri, String> {
    let uri: Uri = value
        .trim()
        .parse()
        .map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(format!("scheme {other:?} is not supported; use http://")),
        None => return Err("expected an absolute URL such as http://127.0.0.1:5000".into()),
    }
    let authority = uri.authority().ok_or("the URL has no host")?;
    if uri.query().is_some() {
        return Err("the URL must not have a query string".into());
    }
    let host = match authority.host() {
        h if h.eq_ignore_ascii_case("localhost") => "127.0.0.1",
        h => h,
    };
    let authority = match authority.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let base = uri.path().trim_end_matches('/');
    format!("http://{authority}{base}")
        .parse()
        .map_err(|e| format!("not a URL: {e}"))
}

pub(crate) fn parse_ready_path(value: &str) -> Result<String, String> {
    let path = if value.starts_with('/') {
        value.to_string()
    } else {
        format!("/{value}")
    };
    path.parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("not a URL path: {e}"))?;
    Ok(path)
}

/// Splits a command line into program and arguments, without a shell.
///
/// Words are separated by whitespace. Single quotes keep everything up to the next single
/// quote literally; double quotes do the same, except that `\"` and `\\` inside them stand
/// for `"` and `\`. Quoted and unquoted parts next to each other form one word (`a"b c"`
/// is `ab c`), and `''` is an empty argument. No variables, globs or other escapes.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

mod settings;
pub use settings::{Fprocess, Settings};

#[cfg(test)]
mod tests;
