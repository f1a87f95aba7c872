//! The watchdog's settings as declared (clap): of-watchdog's variable names, aliases and
//! defaults, each once. The defaults that depend on another setting (`exec_timeout` and
//! `content_type` in classic mode, `healthcheck_interval` from `write_timeout`) are unset
//! here and decided in [`super::Config::resolve`].

use std::time::Duration;

use ferry_runtime::settings;
use ferry_runtime::telemetry::Logging;
use http::Uri;

use super::{DEFAULT_METRICS_PORT, DEFAULT_PORT, Mode, parse_ready_path, parse_upstream};

/// Every variable the watchdog reads. A function image sets them; the function's process
/// inherits the same environment.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// The command that runs the function (required), split on whitespace with simple '…' /
    /// "…" quoting, no shell.
    #[arg(long = "fprocess", env = "fprocess", visible_alias = "function_process",
          value_parser = fprocess)]
    pub fprocess: Option<Fprocess>,
    /// http, streaming, serializing or classic (OpenFaaS's classic watchdog).
    #[arg(long = "mode", env = "mode", default_value = "streaming", value_parser = mode)]
    pub mode: Mode,
    /// The function's own server in http mode (required there), e.g. http://127.0.0.1:5000.
    #[arg(long = "upstream_url", env = "upstream_url", visible_alias = "http_upstream_url",
          value_parser = upstream)]
    pub upstream_url: Option<Uri>,
    /// Longest a client may take to send a request's headers (and an idle keep-alive
    /// connection is kept); 0 disables.
    #[arg(long = "read_timeout", env = "read_timeout", default_value = "30s",
          value_parser = settings::duration)]
    pub read_timeout: Duration,
    /// Longest a response may take; also the drain budget at shutdown; must be > 0.
    #[arg(long = "write_timeout", env = "write_timeout", default_value = "30s",
          value_parser = write_timeout)]
    pub write_timeout: Duration,
    /// Longest the function may take per request, 0 disables; unset: 30s, classic: 0.
    #[arg(long = "exec_timeout", env = "exec_timeout", value_parser = settings::duration)]
    pub exec_timeout: Option<Duration>,
    /// Time spent reporting 503 before the listener closes; unset: write_timeout.
    #[arg(long = "healthcheck_interval", env = "healthcheck_interval",
          value_parser = settings::duration)]
    pub healthcheck_interval: Option<Duration>,
    /// Listening port, all interfaces.
    #[arg(long = "port", env = "port", default_value_t = DEFAULT_PORT,
          value_parser = settings::number::<u16>)]
    pub port: u16,
    /// Concurrent function requests, 0 = unlimited; more get 429.
    #[arg(long = "max_inflight", env = "max_inflight", default_value = "0",
          value_parser = settings::number::<usize>)]
    pub max_inflight: usize,
    /// Response Content-Type of the fork modes; unset: application/octet-stream, classic:
    /// the request's, else sniffed from the output.
    #[arg(long = "content_type", env = "content_type")]
    pub content_type: Option<String>,
    /// Do not write /tmp/.lock.
    #[arg(long = "suppress_lock", env = "suppress_lock", default_value = "false",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub suppress_lock: bool,
    /// /_/ready asks the function at this path (not in classic mode).
    #[arg(long = "ready_path", env = "ready_path", value_parser = parse_ready_path)]
    pub ready_path: Option<String>,
    /// Prefix the function's log lines with time and stream name.
    #[arg(long = "prefix_logs", env = "prefix_logs", default_value = "true",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub prefix_logs: bool,
    /// Buffer request bodies before proxying (for upstreams without chunked support).
    #[arg(long = "http_buffer_req_body", env = "http_buffer_req_body", visible_alias = "buffer_http",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = settings::boolean)]
    pub http_buffer_req_body: bool,
    /// Add the X-Call-Id to request log lines.
    #[arg(long = "log_callid", env = "log_callid", default_value = "false",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub log_callid: bool,
    /// Prometheus metrics at GET /metrics on this port, 0 = off; must differ from port.
    #[arg(long = "metrics_port", env = "metrics_port", default_value_t = DEFAULT_METRICS_PORT,
          value_parser = settings::number::<u16>)]
    pub metrics_port: u16,
    /// Classic only: stderr goes into the response with stdout (false: to the log).
    #[arg(long = "combine_output", env = "combine_output", default_value = "true",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub combine_output: bool,
    /// Classic only: pass the Http_* variables.
    #[arg(long = "cgi_headers", env = "cgi_headers", default_value = "true",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub cgi_headers: bool,
    /// Classic only: copy the output to the watchdog's stdout.
    #[arg(long = "write_debug", env = "write_debug", default_value = "false",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub write_debug: bool,
    /// Classic only: true is refused at start-up (not implemented); read only in classic
    /// mode.
    #[arg(
        long = "marshal_request",
        env = "marshal_request",
        default_value = "false",
        hide_default_value = true
    )]
    pub marshal_request: String,
    /// `log_format`.
    #[command(flatten)]
    pub logging: Logging,
}

/// `fprocess` as written, and split into program and arguments.
#[derive(Debug, Clone)]
pub struct Fprocess {
    /// As written.
    pub line: String,
    /// Program and arguments.
    pub command: Vec<String>,
}

fn fprocess(v: &str) -> Result<Fprocess, String> {
    Ok(Fprocess {
        command: super::split_command(v)?,
        line: v.to_string(),
    })
}

fn mode(v: &str) -> Result<Mode, String> {
    v.trim().parse()
}

fn upstream(v: &str) -> Result<Uri, String> {
    parse_upstream(v)
}

fn write_timeout(v: &str) -> Result<Duration, String> {
    match settings::duration(v)? {
        d if d.is_zero() => Err("must be greater than 0".into()),
        d => Ok(d),
    }
}
