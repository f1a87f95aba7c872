//! The function watchdog: PID 1 of every ferry function image, compatible with OpenFaaS's
//! of-watchdog.
//!
//! It serves HTTP/1.1 on `port` (8080) and runs the function, `fprocess`, in one of four
//! modes:
//!
//! - **`streaming`** (default): `fprocess` is forked per request. The request body streams to
//!   its stdin, its stdout streams back as the response body, stderr goes to the log. The 200
//!   is only committed once the first stdout bytes arrive or the process exits: an exit
//!   without output and with a non-zero status is a 500 carrying the tail of stderr.
//! - **`serializing`**: forked per request; stdout is collected and returned when the process
//!   exits 0 (200, `X-Duration-Seconds`), otherwise 500 with the error and stderr.
//! - **`http`**: `fprocess` is started once and must serve HTTP at `upstream_url`. Every
//!   request is reverse-proxied to it (method, path and query, headers minus hop-by-hop
//!   ones, streamed body); status and headers are copied back with `X-Duration-Seconds`.
//!   An unreachable upstream is a 502, a timeout a 504. If the process exits, for any
//!   reason, [`run`] returns [`WatchdogError::ChildExited`] and the container stops.
//! - **`classic`**: OpenFaaS's classic watchdog (`fwatchdog`), for images built from the
//!   classic templates. See [Classic mode](#classic-mode).
//!
//! Forked processes inherit the watchdog's environment plus CGI-style variables:
//! `Http_<Header_Name>` per request header (Go casing, `-` → `_`, first value), and
//! `Http_Method`, `Http_Path`, `Http_Query`, `Http_Host`, `Http_Content_Length`,
//! `Http_Transfer_Encoding`. Each runs in a process group of its own, which is killed when
//! the request times out or the client goes away.
//!
//! Errors made by the watchdog (timeouts, unreachable upstream, failed fork) carry
//! `X-OpenFaaS-Internal: of-watchdog`; the `max_inflight` 429 carries
//! `X-OpenFaaS-Internal: faas-middleware`, exactly as OpenFaaS's limiter.
//!
//! # Configuration (environment, of-watchdog names)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `fprocess` / `function_process` | required | the command; split on whitespace with simple `'…'` / `"…"` quoting, no shell |
//! | `mode` | `streaming` | `http`, `streaming`, `serializing` or `classic` |
//! | `upstream_url` / `http_upstream_url` | required in `http` mode | e.g. `http://127.0.0.1:5000` |
//! | `read_timeout` | `30s` | see below; `0` disables |
//! | `write_timeout` | `30s` | see below; must be > 0 |
//! | `exec_timeout` | `30s`; classic: `0` | see below; `0` disables |
//! | `healthcheck_interval` | `write_timeout` | time spent reporting 503 before the listener closes |
//! | `port` | `8080` | listening port, all interfaces |
//! | `max_inflight` | `0` (unlimited) | concurrent function requests; more get 429 |
//! | `content_type` | `application/octet-stream`; classic: unset | response `Content-Type` of the fork modes; unset in classic mode: the request's `Content-Type`, else sniffed from the output |
//! | `suppress_lock` | `false` | do not write `/tmp/.lock` |
//! | `ready_path` | unset | `/_/ready` asks the function at this path (not classic) |
//! | `prefix_logs` | `true` | prefix the function's log lines with time and stream name |
//! | `http_buffer_req_body` / `buffer_http` | `false` | buffer request bodies before proxying (for upstreams without chunked support) |
//! | `log_callid` | `false` | add the `X-Call-Id` to request log lines |
//! | `metrics_port` | `8081` | port of `GET /metrics` (Prometheus text), all interfaces; `0` = off |
//! | `combine_output` | `true` | classic only: stderr shares stdout's pipe and goes into the response (false: to the log) |
//! | `cgi_headers` | `true` | classic only: pass the `Http_*` variables |
//! | `write_debug` | `false` | classic only: copy the output to the watchdog's stdout, log failures with the output |
//! | `marshal_request` | `false` | classic only: `true` is refused at start-up (not implemented) |
//!
//! Durations are written `500ms`, `30s`, `2m`, `1h30m`; a bare number means seconds.
//!
//! # Timeouts, precisely
//!
//! - **`read_timeout`** limits how long a client may take to send a request's *headers*,
//!   counted from the moment the server starts waiting for them: when the connection opens,
//!   or when the previous response on a keep-alive connection ends (so it is also the idle
//!   timeout of keep-alive connections). On expiry the connection is closed without a
//!   response. It does not limit the request body: reading the body is part of running the
//!   function and falls under the two limits below.
//! - **`exec_timeout`** limits the function's work per request, counted from when the
//!   request reaches the runner. A request header `X-Timeout: <duration>` can shorten it (never
//!   lengthen it; when `exec_timeout` is 0 it sets the limit). Fork modes: if it expires
//!   before any output, the process group is killed and the answer is 504; after streaming
//!   output began, the process group is killed and the response body is cut short (the
//!   chunked body is aborted so the client sees an incomplete response). http mode: if the
//!   upstream's response headers are not back in time the answer is 504, and a response body
//!   still streaming at the limit is cut short the same way.
//! - **`write_timeout`** limits the whole response, from the end of the request headers to
//!   the last body byte, whatever the mode (Go's `http.Server.WriteTimeout`). If the
//!   response has not started by then the answer is 504 (`X-OpenFaaS-Internal:
//!   of-watchdog`); a body still streaming is cut short. It is also the drain budget at
//!   shutdown.
//!
//! # Health, readiness and shutdown
//!
//! `GET /_/health` answers 200 `OK` from start-up until shutdown begins, then 503 (other
//! methods: 405) — except that in http mode it answers 503 while the upstream does not accept
//! TCP connections (checked by connecting, so health never runs ahead of the function's
//! server), and in classic mode while the lock file is missing (unless `suppress_lock`).
//! `GET /_/ready` (not in classic mode) adds: 429 when `max_inflight` requests are running,
//! and, with `ready_path`, the function's own answer at that path. Neither counts toward
//! `max_inflight`.
//!
//! The lock file `/tmp/.lock` ([`std::env::temp_dir`]) is written at start-up (unless
//! `suppress_lock`) for `watchdog --run-healthcheck` exec probes; if it cannot be written
//! the watchdog warns and carries on, as health itself is decided in memory (in classic mode
//! it then reports 503).
//!
//! When the `shutdown` future passed to [`run`] resolves (SIGTERM or SIGINT in the binary):
//! health and readiness turn 503 and the lock file is removed; requests are still served for
//! `healthcheck_interval`; then the listener closes, idle connections close, and in-flight
//! requests get up to `write_timeout` to finish (the rest are aborted, killing their
//! processes); finally the http-mode process gets SIGTERM, and SIGKILL if it is still there
//! 5 seconds later. [`run`] then returns `Ok`.
//!
//! # Classic mode
//!
//! `mode=classic` behaves as OpenFaaS's classic watchdog, so images built on it run
//! unchanged with the same environment:
//!
//! - Every request except `/_/health` runs the function, `/_/ready` included (the classic
//!   watchdog has no readiness endpoint). GET, POST, PUT, PATCH and DELETE fork; other
//!   methods get an empty 405. `max_inflight` applies first (429).
//! - The body is read completely, then the process is started with it on stdin (a body that
//!   cannot be read is a 400 and nothing is forked). Its output is collected: exit 0 is a 200
//!   with the output and `X-Duration-Seconds`; any other exit a 500 with the error and the
//!   output.
//! - `combine_output=true` (the default) gives the process one pipe for stdout and stderr,
//!   so the response holds both in the order written; with `false` stderr goes to the log and
//!   the response holds stdout only.
//! - `cgi_headers=true` (the default) sets the `Http_*` variables above plus
//!   `Http_ContentLength` and `Http_Content_Length` as Go computes them (the header, `-1`
//!   for a chunked body, else `0`); `false` passes only the watchdog's environment.
//! - Without `content_type` the response's `Content-Type` is the request's, else sniffed from
//!   the output like Go's HTTP server does (a subset: HTML, XML, PDF, PNG, JPEG, GIF, plain
//!   text, otherwise `application/octet-stream`).
//! - Per request it logs `Forking fprocess.` and, on success, `Wrote <n> Bytes - Duration:
//!   <secs>s` (six decimals); with `write_debug` the output is copied to stdout instead and
//!   the line reads `Duration: <secs>s`, preceded by `Query  <query>` and `Path  <path>`, and
//!   a failure logs `Success=false, Error=<status>` and `Out=<output>`.
//! - `/_/health` is 200 only while the lock file exists (removing it makes the function
//!   unhealthy); with `suppress_lock` the in-memory flag decides.
//!
//! Differences from the classic watchdog, deliberate: `exec_timeout` and `write_timeout`
//! answer 504 with `X-OpenFaaS-Internal` like the other modes (the classic watchdog answered
//! 408 `Killed process.` and dropped the connection, respectively) and kill the process group
//! rather than the process alone; the 500 reads `function exited with exit status: <n>`
//! (Go: `exit status <n>`); `fprocess` is split with quoting (Go splits on single spaces);
//! booleans accept `1`/`0`/`yes`/`no` and reject other values (Go takes anything but `true`
//! as false); with `combine_output=false` stderr is logged line by line as it comes
//! (`prefix_logs`), not as one `stderr:` entry after the exit; log lines carry ferry's
//! timestamp and level; with `suppress_lock` health follows the in-memory flag (the classic
//! watchdog then answers 503, as it still looks for the lock file); a lock file that cannot
//! be written is a warning, not a panic; `marshal_request=true` is refused at start-up.
//!
//! # Metrics
//!
//! As of-watchdog, on `metrics_port` (a listener of its own, so scrapes are not requests):
//! `http_requests_total{code,method}` (counter), `http_request_duration_seconds{code,method}`
//! (histogram) and `http_requests_in_flight` (gauge). Only function requests count, not
//! `/_/health` or `/_/ready` (in classic mode `/_/ready` is a function request and counts); a
//! request is in flight until its response body has been sent.
//! `method` is lower case (`get`, `post`), as Go's `promhttp` writes it. The binary logs an
//! error and carries on without metrics if it cannot listen on `metrics_port`.
//!
//! # Layout
//!
//! - [`config`]: [`Config`] from the environment, [`Mode`], command-line splitting;
//! - `server`: accept loop, routing, limiter, shutdown sequence;
//! - `metrics`: the request metrics and their `/metrics` listener;
//! - `health`: lock file and the `/_/health`, `/_/ready` handlers;
//! - `runner`: `fork` (per-request processes, with `classic`'s additions) and `http`
//!   (reverse proxy to one process);
//! - [`error`]: [`WatchdogError`] and its mapping to HTTP responses;
//! - `body`: the body type and the deadline-enforcing wrapper.

pub mod config;
pub mod error;

mod body;
mod health;
mod metrics;
mod runner;
mod server;

use std::future::Future;
use std::sync::Arc;

pub use config::{Config, ConfigError, Mode};
pub use error::WatchdogError;

/// The watchdog's version, printed by `watchdog --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the watchdog on `listener` until `shutdown` resolves and the shutdown sequence (see
/// the crate docs) has finished.
///
/// In http mode the function process is started first; a failure to start it, or its exit
/// before shutdown, is returned as an error. The fork modes only fail at start-up on an
/// invalid configuration.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WatchdogError> {
    run_with_metrics(config, listener, None, shutdown).await
}

/// [`run`], also serving the request metrics at `GET /metrics` on `metrics` (the binary binds
/// `metrics_port`) until the watchdog stops. Without a metrics listener requests are still
/// counted, just not served.
pub async fn run_with_metrics(
    config: Config,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WatchdogError> {
    let runner = runner::Runner::start(&config)?;
    let addr = listener.local_addr().map_err(|source| WatchdogError::Io {
        context: "cannot read the listening address",
        source,
    })?;
    tracing::info!(
        %addr,
        mode = config.mode.as_str(),
        fprocess = %config.fprocess,
        max_inflight = config.max_inflight,
        "watchdog serving"
    );
    let state = Arc::new(server::State::new(config, runner));
    let metrics = metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics served at /metrics");
        }
        tokio::spawn(metrics::serve(listener, state.metrics.clone()))
    });
    state.health.mark_accepting();
    let result = server::serve(listener, state, shutdown).await;
    if let Some(task) = metrics {
        task.abort();
    }
    result
}
