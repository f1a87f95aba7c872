//! `gateway` settings: declared once in [`Settings`] (clap: variable, flag, default,
//! parser, `--help`), then resolved into the [`Config`] the gateway runs with.

use std::net::IpAddr;
use std::time::Duration;

pub use ferry_invoke::{ProviderUrl, Settings as InvokeSettings};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::callback_guard::CallbackGuard;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use ferry_runtime::listen::ControlBind;
use ferry_runtime::settings;
use ferry_runtime::telemetry::Logging;

use crate::tls::{TlsArgs, TlsSettings};

/// `port` default.
pub const DEFAULT_PORT: u16 = 8080;
/// `publish_timeout` default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// `publish_timeout` default with replicated JetStream objects (`nats_replicas` above 1): a
/// stream whose leader's server died without handing over (killed, cut off) has a new leader
/// only after nats-server's raft election timeout, 4 to 9 s; submissions wait that out instead
/// of answering `503`.
pub const DEFAULT_CLUSTER_PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest count `max_connections` and `max_concurrent_requests` accept.
const MAX_COUNT: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// Every setting of `gateway`, as declared: the environment variable (or flag), its default
/// and its parser. [`Config::resolve`] turns it into the [`Config`].
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Listen port.
    #[arg(long = "port", env = "port", default_value_t = DEFAULT_PORT,
          value_parser = settings::number::<u16>)]
    pub port: u16,
    /// `bind`, `allow_unauthenticated`.
    #[command(flatten)]
    pub bind: ControlBind,
    /// Reaching functions.
    #[command(flatten)]
    pub invoke: InvokeSettings,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Longest sync call, from when a replica is ready (504 past it; a streaming response is
    /// cut); also how long /system/* waits for the provider's response headers.
    #[arg(long = "upstream_timeout", env = "upstream_timeout", default_value = "60s",
          value_parser = settings::positive_duration)]
    pub upstream_timeout: Duration,
    /// Largest async request body in bytes, 413 beyond.
    ///
    /// Base64 makes 512 KiB about 683 KiB, which leaves room for the headers and JSON of the
    /// queued message under NATS's default 1 MiB `max_payload`.
    #[arg(long = "max_async_body", env = "max_async_body", default_value = "512KiB",
          value_parser = settings::positive_size)]
    pub max_async_body: usize,
    /// Time to store an async call (status record and JetStream ack, attempts repeated
    /// within it), 503 past it; unset: 5s, or 15s with nats_replicas > 1 (outlasts a leader
    /// election).
    #[arg(long = "publish_timeout", env = "publish_timeout",
          value_parser = settings::positive_duration)]
    pub publish_timeout: Option<Duration>,
    /// Largest sync request body (Content-Length known up front) read first, so that a call
    /// that never reached its replica can be retried on another; 0 = only calls without a
    /// body.
    #[arg(long = "max_retry_body", env = "max_retry_body", default_value = "64KiB",
          value_parser = settings::size)]
    pub max_retry_body: usize,
    /// Largest sync request body, 0 = no limit: 413 by Content-Length before the call, or once
    /// a chunked body grows past it.
    ///
    /// Sync bodies are streamed, so the gateway holds none of it; the limit bounds what an
    /// anonymous caller can push into a replica (a `serializing` watchdog reads the whole
    /// body into memory) while leaving room for file uploads.
    #[arg(long = "max_sync_body", env = "max_sync_body", default_value = "64MiB",
          value_parser = settings::size)]
    pub max_sync_body: usize,
    /// Largest /system/* request body, 413 beyond.
    ///
    /// What ferry's provider itself accepts: deployments, scaling requests and secrets are a
    /// few KiB (Kubernetes caps a secret at 1 MiB).
    #[arg(long = "max_request_body", env = "max_request_body", default_value = "2MiB",
          value_parser = settings::positive_size)]
    pub max_request_body: usize,
    /// Longest a request body may stall without a byte (reset by every chunk), 408 past it.
    #[arg(long = "read_timeout", env = "read_timeout", default_value = "30s",
          value_parser = settings::positive_duration)]
    pub read_timeout: Duration,
    /// Close connections without complete request headers (or idle keep-alive ones) after
    /// this.
    #[arg(long = "read_header_timeout", env = "read_header_timeout", default_value = "10s",
          value_parser = settings::positive_duration)]
    pub read_header_timeout: Duration,
    /// Open client connections; more wait in the listen backlog until one closes.
    #[arg(long = "max_connections", env = "max_connections", default_value = "10000",
          value_parser = count)]
    pub max_connections: usize,
    /// Requests handled at once (until their response starts), 503 with Retry-After: 1
    /// beyond; /healthz and /metrics not counted.
    ///
    /// Far above what a benchmark or a busy gateway has in flight, low enough that a flood is
    /// answered `503` before it exhausts memory.
    #[arg(long = "max_concurrent_requests", env = "max_concurrent_requests",
          default_value = "4096", value_parser = count)]
    pub max_concurrent_requests: usize,
    /// Prometheus host (name or IP) that scrapes the gateway, for a function's history on
    /// GET /system/function-metrics (the dashboard's charts); empty: none.
    #[arg(long = "faas_prometheus_host", env = "faas_prometheus_host", default_value = "",
          value_parser = prometheus_host)]
    pub prometheus_host: String,
    /// Prometheus port.
    #[arg(long = "faas_prometheus_port", env = "faas_prometheus_port", default_value = "9090",
          value_parser = settings::number::<u16>)]
    pub prometheus_port: u16,
    /// `basic_auth`, `secret_mount_path`.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// `callback_allow`, `callback_deny`.
    #[command(flatten)]
    pub callback_guard: CallbackGuard,
    /// HTTPS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// `log_format`.
    #[command(flatten)]
    pub logging: Logging,
}

/// Everything `gateway` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `port` (8080): listen port.
    pub port: u16,
    /// `bind` (`127.0.0.1`; `0.0.0.0` with `basic_auth=true`): listen address. A
    /// non-loopback one with `basic_auth` off is refused unless `allow_unauthenticated=true`:
    /// `/system/*` reaches the provider, which controls Docker ([`ferry_runtime::listen`]).
    pub bind: IpAddr,
    /// `functions_provider_url`, `provider_timeout`, `endpoint_cache_ttl`,
    /// `endpoint_max_stale`, `function_cache_ttl`, `scale_from_zero`,
    /// `scale_from_zero_timeout`: reaching functions (see `ferry_invoke::Settings`).
    pub invoke: InvokeSettings,
    /// `nats_url`, `nats_stream_replicas`, `nats_duplicate_window`, `nats_max_age`,
    /// `call_status_ttl`, `dead_letter_max_age`.
    pub nats: NatsConfig,
    /// `upstream_timeout` (`60s`): the longest a synchronous call may take, from receipt (for
    /// a call held while its function had no ready replica: from when one was ready) to the
    /// function's last body byte; past it the caller gets `504` (or, once the function's
    /// response has started, the response is cut). Also bounds `/system/*` calls until the
    /// provider's response headers arrive.
    pub upstream_timeout: Duration,
    /// `max_async_body` (`512KiB` as bytes: 524288): largest async request body; larger
    /// ones get `413`.
    pub max_async_body: usize,
    /// `publish_timeout` (`5s`; `15s` when `nats_replicas` is above 1): how long an async
    /// submission may take to be stored (status record and JetStream ack, attempts repeated
    /// within it) before answering `503`.
    pub publish_timeout: Duration,
    /// `max_retry_body` (`64KiB` as bytes: 65536): a sync call whose request body is at most
    /// this big, with its size known up front (`Content-Length`), is read into memory first,
    /// so that it can be sent to another replica when connecting to the first one fails.
    /// Calls without a body are always retryable; streamed or bigger bodies are forwarded
    /// as they arrive and not retried. `0`: only calls without a body are retried.
    pub max_retry_body: usize,
    /// `max_sync_body` (`64MiB` as bytes: 67108864): largest sync request body, `0` = no
    /// limit. A bigger `Content-Length` gets `413` before anything is sent; a streamed
    /// (chunked) body is cut once it grows past the limit (`413` if the function has not
    /// answered yet).
    pub max_sync_body: usize,
    /// `max_request_body` (`2MiB` as bytes: 2097152): largest `/system/*` request body, the
    /// same way (`413`, nothing forwarded when `Content-Length` says so).
    pub max_request_body: usize,
    /// `read_timeout` (`30s`): the longest a request body (sync, async or `/system/*`) may
    /// stall, i.e. the gateway waits for its next bytes; past it the call is given up and the
    /// client gets `408` (unless the function already answered). Reset by every chunk, so a
    /// slow but steady upload is not cut; the whole call stays bounded by `upstream_timeout`.
    pub read_timeout: Duration,
    /// `read_header_timeout` (`10s`): a connection that has not sent a request's complete
    /// headers this long after it opened, or after its previous response (an idle
    /// keep-alive connection), is closed.
    pub read_header_timeout: Duration,
    /// `max_connections` (10000): open client connections; past it new ones wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// `max_concurrent_requests` (4096): requests being handled at once (until their
    /// response starts), `/healthz` and `/metrics` not counted; past it `503` with
    /// `Retry-After: 1`.
    pub max_concurrent_requests: usize,
    /// `basic_auth` (`false`; `true` in compose) and `secret_mount_path` (`/run/secrets`):
    /// whether `/system/*` requires the basic-auth credentials in `basic-auth-user` and
    /// `basic-auth-password` of that folder (generated on first start if absent), which the
    /// gateway also sends on every call it makes to the provider.
    pub auth: AuthConfig,
    /// `callback_allow` and `callback_deny` (both empty): where `X-Callback-Url` may point,
    /// besides the built-in denials of link-local, cloud metadata, unspecified and multicast
    /// addresses ([`ferry_runtime::callback_guard`]). Checked at submission without DNS: an
    /// IP literal or a name listed as denied gets `400`; the queue-worker checks every
    /// address a name resolves to (set the same lists there).
    pub callback_guard: CallbackGuard,
    /// `faas_prometheus_host` (empty) and `faas_prometheus_port` (9090): Prometheus' base
    /// URL, `http://host:port`, for `GET /system/function-metrics` ([`crate::prometheus`]);
    /// `None` without a host.
    pub prometheus_url: Option<String>,
    /// `tls_cert_file` and `tls_key_file` (both or neither), `tls_reload_interval` (`5s`),
    /// `tls_self_signed` (`false`), `tls_self_signed_hosts`: HTTPS (HTTP/2 and HTTP/1.1)
    /// instead of plain HTTP/1.1 on `port` ([`crate::tls`]); `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        Config::resolve(settings::from_env(e)?)
    }

    /// The configuration `s` gives: the listen address, `publish_timeout`'s default and
    /// TLS decided from the settings they depend on.
    pub fn resolve(s: Settings) -> Result<Config, EnvError> {
        let publish_timeout = match s.nats.stream_replicas {
            1 => DEFAULT_PUBLISH_TIMEOUT,
            _ => DEFAULT_CLUSTER_PUBLISH_TIMEOUT,
        };
        Ok(Config {
            port: s.port,
            bind: s.bind.address(s.auth.enabled)?,
            invoke: s.invoke,
            nats: s.nats,
            upstream_timeout: s.upstream_timeout,
            max_async_body: s.max_async_body,
            publish_timeout: s.publish_timeout.unwrap_or(publish_timeout),
            max_retry_body: s.max_retry_body,
            max_sync_body: s.max_sync_body,
            max_request_body: s.max_request_body,
            read_timeout: s.read_timeout,
            read_header_timeout: s.read_header_timeout,
            max_connections: s.max_connections,
            max_concurrent_requests: s.max_concurrent_requests,
            prometheus_url: prometheus_url(&s.prometheus_host, s.prometheus_port),
            tls: TlsSettings::resolve(s.tls, &s.auth)?,
            auth: s.auth,
            callback_guard: s.callback_guard,
        })
    }
}

/// `faas_prometheus_host`: a host name or an IP address, nothing else (no scheme, port or
/// path); an IPv6 address with or without brackets.
fn prometheus_host(v: &str) -> Result<String, String> {
    let v = v.trim();
    let bare = v
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(v);
    let name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => Ok(format!("[{a}]")),
        Ok(a) if v == bare => Ok(a.to_string()),
        Err(_) if v == bare && v.chars().all(name) => Ok(v.to_string()),
        _ => Err("must be a host name or an IP address (no scheme, port or path)".into()),
    }
}

/// `http://host:port` when `host` is set.
fn prometheus_url(host: &str, port: u16) -> Option<String> {
    (!host.is_empty()).then(|| format!("http://{host}:{port}"))
}

/// A count from 1 to [`MAX_COUNT`].
fn count(v: &str) -> Result<usize, String> {
    match settings::number::<usize>(v)? {
        n if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(format!("must be between 1 and {MAX_COUNT}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_readme_table_lists_every_setting_with_its_default() {
        let readme = include_str!("../../README.md");
        ferry_runtime::settings::readme::assert_agrees::<Settings>(readme, "gateway");
    }

    #[test]
    fn prometheus_is_a_host_and_port() {
        assert_eq!(prometheus_host("prometheus").unwrap(), "prometheus");
        assert_eq!(prometheus_host(" 10.0.0.9 ").unwrap(), "10.0.0.9");
        assert_eq!(prometheus_host("::1").unwrap(), "[::1]");
        assert_eq!(prometheus_host("[::1]").unwrap(), "[::1]");
        for bad in [
            "http://prometheus",
            "prometheus:9090",
            "p/x",
            "a b",
            "[name]",
        ] {
            assert!(prometheus_host(bad).is_err(), "{bad}");
        }
        assert_eq!(prometheus_url("", 9090), None);
        assert_eq!(
            prometheus_url("[::1]", 9091).as_deref(),
            Some("http://[::1]:9091")
        );
    }

    #[test]
    fn replicated_streams_wait_longer_for_publishing() {
        let cluster: HashMap<&str, &str> = [("nats_replicas", "3")].into();
        let c = Config::from_env(&cluster).unwrap();
        assert_eq!(c.publish_timeout, DEFAULT_CLUSTER_PUBLISH_TIMEOUT);
        let set: HashMap<&str, &str> = [("nats_replicas", "3"), ("publish_timeout", "7s")].into();
        let c = Config::from_env(&set).unwrap();
        assert_eq!(c.publish_timeout, Duration::from_secs(7));
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.invoke.provider_url.to_string(), "http://127.0.0.1:8081");
        assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(c.nats.call_status_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(
            c.nats.dead_letter_max_age,
            Duration::from_secs(14 * 24 * 3600)
        );
        assert_eq!(c.upstream_timeout, Duration::from_secs(60));
        assert_eq!(c.max_async_body, 512 * 1024);
        assert_eq!(c.publish_timeout, Duration::from_secs(5));
        assert_eq!(c.invoke.endpoint_cache_ttl, Duration::from_secs(1));
        assert_eq!(c.invoke.endpoint_max_stale, Duration::from_secs(5));
        assert_eq!(c.max_retry_body, 64 * 1024);
        assert_eq!(c.max_sync_body, 64 * 1024 * 1024);
        assert_eq!(c.max_request_body, 2 * 1024 * 1024);
        assert_eq!(c.read_timeout, Duration::from_secs(30));
        assert_eq!(c.read_header_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_concurrent_requests, 4096);
        assert_eq!(c.invoke.function_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.invoke.provider_timeout, Duration::from_secs(5));
        assert!(c.invoke.scale_from_zero);
        assert_eq!(c.invoke.scale_from_zero_timeout, Duration::from_secs(30));
        assert!(!c.auth.enabled);
        assert_eq!(
            c.auth.secret_mount_path,
            std::path::PathBuf::from("/run/secrets")
        );
        assert_eq!(c.tls, None, "plain HTTP");
    }

    #[test]
    fn values() {
        let e: HashMap<&str, &str> = [
            ("port", "9000"),
            ("functions_provider_url", "http://provider:8081/api/"),
            ("nats_url", "nats://nats:4222"),
            ("upstream_timeout", "2m"),
            ("max_async_body", "1MiB"),
            ("endpoint_cache_ttl", "0"),
            ("endpoint_max_stale", "2500ms"),
            ("max_retry_body", "0"),
            ("max_sync_body", "0"),
            ("max_request_body", "16MiB"),
            ("read_timeout", "2m"),
            ("read_header_timeout", "500ms"),
            ("max_connections", "100"),
            ("max_concurrent_requests", "1"),
            ("scale_from_zero", "false"),
            ("scale_from_zero_timeout", "3s"),
            ("basic_auth", "true"),
            ("secret_mount_path", "/var/secrets"),
        ]
        .into();
        let c = Config::from_env(&e).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.invoke.provider_url.authority.as_str(), "provider:8081");
        assert_eq!(c.invoke.provider_url.prefix, "/api");
        assert_eq!(
            c.invoke
                .provider_url
                .uri("/system/functions")
                .unwrap()
                .to_string(),
            "http://provider:8081/api/system/functions"
        );
        assert_eq!(c.nats.url, "nats://nats:4222");
        assert_eq!(c.upstream_timeout, Duration::from_secs(120));
        assert_eq!(c.max_async_body, 1024 * 1024);
        assert_eq!(c.invoke.endpoint_cache_ttl, Duration::ZERO);
        assert_eq!(c.invoke.endpoint_max_stale, Duration::from_millis(2500));
        assert_eq!(c.max_retry_body, 0);
        assert_eq!(c.max_sync_body, 0, "no limit");
        assert_eq!(c.max_request_body, 16 * 1024 * 1024);
        assert_eq!(c.read_timeout, Duration::from_secs(120));
        assert_eq!(c.read_header_timeout, Duration::from_millis(500));
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.max_concurrent_requests, 1);
        assert!(!c.invoke.scale_from_zero);
        assert_eq!(c.invoke.scale_from_zero_timeout, Duration::from_secs(3));
        assert!(c.auth.enabled);
        assert_eq!(
            c.auth.secret_mount_path,
            std::path::PathBuf::from("/var/secrets")
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("port", "http"),
            ("functions_provider_url", "https://provider:8081"),
            ("functions_provider_url", "provider:8081"),
            ("functions_provider_url", "http:///x"),
            ("upstream_timeout", "0"),
            ("upstream_timeout", "soon"),
            ("max_async_body", "0"),
            ("max_async_body", "12 parsecs"),
            ("publish_timeout", "-1s"),
            ("endpoint_max_stale", "a while"),
            ("max_retry_body", "64 apples"),
            ("max_sync_body", "1GiB"),
            ("max_sync_body", "-1"),
            ("max_request_body", "0"),
            ("max_request_body", "big"),
            ("read_timeout", "0"),
            ("read_timeout", "forever"),
            ("read_header_timeout", "0s"),
            ("max_connections", "0"),
            ("max_connections", "many"),
            ("max_connections", "18446744073709551615"),
            ("max_concurrent_requests", "0"),
            ("max_concurrent_requests", "-5"),
            ("max_concurrent_requests", "99999999999999999999"),
            ("scale_from_zero", "maybe"),
            ("scale_from_zero_timeout", "0"),
            ("basic_auth", "sometimes"),
            ("callback_deny", "10.0.0.0/99"),
            ("callback_allow", "http://x"),
            ("tls_self_signed", "perhaps"),
            ("tls_reload_interval", "now and then"),
        ] {
            let e: HashMap<&str, &str> = [(name, value)].into();
            let err = Config::from_env(&e).expect_err(value);
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let both: HashMap<&str, &str> = [
            ("tls_cert_file", "/etc/ferry/tls.crt"),
            ("tls_key_file", "/etc/ferry/tls.key"),
        ]
        .into();
        let tls = Config::from_env(&both).unwrap().tls.expect("TLS on");
        assert_eq!(
            tls.cert_file,
            std::path::PathBuf::from("/etc/ferry/tls.crt")
        );
        assert_eq!(tls.key_file, std::path::PathBuf::from("/etc/ferry/tls.key"));
        assert_eq!(tls.reload_interval, Duration::from_secs(5));
        let cert_only: HashMap<&str, &str> = [("tls_cert_file", "/etc/ferry/tls.crt")].into();
        let err = Config::from_env(&cert_only).unwrap_err();
        assert_eq!(err.name, "tls_key_file", "{err}");
        let key_only: HashMap<&str, &str> = [("tls_key_file", "/etc/ferry/tls.key")].into();
        let err = Config::from_env(&key_only).unwrap_err();
        assert_eq!(err.name, "tls_cert_file", "{err}");
    }

    #[test]
    fn sizes() {
        use ferry_runtime::env;
        assert_eq!(env::parse_size("524288"), Some(524288));
        assert_eq!(env::parse_size("512KiB"), Some(524288));
        assert_eq!(env::parse_size("512 kb"), Some(524288));
        assert_eq!(env::parse_size("2m"), Some(2 * 1024 * 1024));
        assert_eq!(env::parse_size("KiB"), None);
        assert_eq!(env::parse_size("1GiB"), None);
    }
}
