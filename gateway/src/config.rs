//! `gateway` settings, from environment variables.

use std::net::IpAddr;
use std::time::Duration;

pub use ferry_invoke::{ProviderUrl, Settings as InvokeSettings};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::callback_guard::CallbackGuard;
use ferry_runtime::env::{self, Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use ferry_runtime::listen::{self, Exposure};

use crate::tls::TlsSettings;

/// `port` default.
pub const DEFAULT_PORT: u16 = 8080;
/// `upstream_timeout` default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// `max_async_body` default: 512 KiB. Base64 makes it about 683 KiB, which leaves room for
/// the headers and JSON of the queued message under NATS's default 1 MiB `max_payload`.
pub const DEFAULT_MAX_ASYNC_BODY: usize = 512 * 1024;
/// `publish_timeout` default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// `publish_timeout` default with replicated JetStream objects (`nats_replicas` above 1): a
/// stream whose leader's server died without handing over (killed, cut off) has a new leader
/// only after nats-server's raft election timeout, 4 to 9 s; submissions wait that out instead
/// of answering `503`.
pub const DEFAULT_CLUSTER_PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// `max_retry_body` default: 64 KiB.
pub const DEFAULT_MAX_RETRY_BODY: usize = 64 * 1024;
/// `max_sync_body` default: 64 MiB. Sync bodies are streamed, so the gateway holds none of
/// it; the limit bounds what an anonymous caller can push into a replica (a `serializing`
/// watchdog reads the whole body into memory) while leaving room for file uploads.
pub const DEFAULT_MAX_SYNC_BODY: usize = 64 * 1024 * 1024;
/// `max_request_body` default: 2 MiB, what ferry's provider itself accepts: deployments,
/// scaling requests and secrets are a few KiB (Kubernetes caps a secret at 1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY: usize = 2 * 1024 * 1024;
/// `read_timeout` default: a request body that stalls this long is given up (`408`).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `read_header_timeout` default: 10 s to send a request's headers (or, on an idle
/// keep-alive connection, to start the next request).
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `max_connections` default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `max_concurrent_requests` default: far above what a benchmark or a busy gateway has in
/// flight, low enough that a flood is answered `503` before it exhausts memory.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4096;
/// The largest count `max_connections` and `max_concurrent_requests` accept.
const MAX_COUNT: usize = tokio::sync::Semaphore::MAX_PERMITS;

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
    /// `tls_cert_file` and `tls_key_file` (both or neither), `tls_reload_interval` (`5s`),
    /// `tls_self_signed` (`false`), `tls_self_signed_hosts`: HTTPS (HTTP/2 and HTTP/1.1)
    /// instead of plain HTTP/1.1 on `port` ([`crate::tls`]); `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        let positive = |name: &str, default: Duration| env::positive_duration_or(e, name, default);
        let nats = NatsConfig::from_env(e)?;
        let publish_timeout = match nats.stream_replicas {
            1 => DEFAULT_PUBLISH_TIMEOUT,
            _ => DEFAULT_CLUSTER_PUBLISH_TIMEOUT,
        };
        Ok(Config {
            port: env::number_or(e, "port", DEFAULT_PORT)?,
            bind: listen::bind_from_env(e, Exposure::Control)?,
            invoke: InvokeSettings::from_env(e)?,
            nats,
            upstream_timeout: positive("upstream_timeout", DEFAULT_UPSTREAM_TIMEOUT)?,
            max_async_body: size(e, "max_async_body", DEFAULT_MAX_ASYNC_BODY, false)?,
            max_retry_body: env::parse_or(e, "max_retry_body", DEFAULT_MAX_RETRY_BODY, |v| {
                env::parse_size(v)
                    .ok_or_else(|| "expected a size in bytes, e.g. 65536 or 64KiB".into())
            })?,
            max_sync_body: size(e, "max_sync_body", DEFAULT_MAX_SYNC_BODY, true)?,
            max_request_body: size(e, "max_request_body", DEFAULT_MAX_REQUEST_BODY, false)?,
            read_timeout: positive("read_timeout", DEFAULT_READ_TIMEOUT)?,
            read_header_timeout: positive("read_header_timeout", DEFAULT_READ_HEADER_TIMEOUT)?,
            max_connections: count(e, "max_connections", DEFAULT_MAX_CONNECTIONS)?,
            max_concurrent_requests: count(
                e,
                "max_concurrent_requests",
                DEFAULT_MAX_CONCURRENT_REQUESTS,
            )?,
            publish_timeout: positive("publish_timeout", publish_timeout)?,
            auth: AuthConfig::from_env(e)?,
            callback_guard: CallbackGuard::from_env(e)?,
            tls: TlsSettings::from_env(e)?,
        })
    }
}

/// A size in bytes (`524288`, `512KiB`, `64MiB`); `0` only when `zero_ok` (no limit).
fn size(e: &impl Env, name: &str, default: usize, zero_ok: bool) -> Result<usize, EnvError> {
    env::parse_or(e, name, default, |v| match env::parse_size(v) {
        Some(0) if !zero_ok => Err("must be greater than zero".to_string()),
        Some(n) => Ok(n),
        None => Err("expected a size in bytes, e.g. 524288, 512KiB or 1MB".into()),
    })
}

/// A count from 1 to [`MAX_COUNT`].
fn count(e: &impl Env, name: &str, default: usize) -> Result<usize, EnvError> {
    env::parse_or(e, name, default, |v| match v.parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between 1 and {MAX_COUNT}")),
        Err(e) => Err(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
        assert_eq!(env::parse_size("524288"), Some(524288));
        assert_eq!(env::parse_size("512KiB"), Some(524288));
        assert_eq!(env::parse_size("512 kb"), Some(524288));
        assert_eq!(env::parse_size("2m"), Some(2 * 1024 * 1024));
        assert_eq!(env::parse_size("KiB"), None);
        assert_eq!(env::parse_size("1GiB"), None);
    }
}
