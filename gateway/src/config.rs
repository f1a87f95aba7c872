//! `gateway` settings, from environment variables.

use std::time::Duration;

use ferry_runtime::auth::AuthConfig;
use ferry_runtime::env::{self, Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use http::Uri;
use http::uri::{Authority, Scheme};

/// `port` default.
pub const DEFAULT_PORT: u16 = 8080;
/// `functions_provider_url` default.
pub const DEFAULT_PROVIDER_URL: &str = "http://127.0.0.1:8081";
/// `upstream_timeout` default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// `max_async_body` default: 512 KiB. Base64 makes it about 683 KiB, which leaves room for
/// the headers and JSON of the queued message under NATS's default 1 MiB `max_payload`.
pub const DEFAULT_MAX_ASYNC_BODY: usize = 512 * 1024;
/// `publish_timeout` default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// `endpoint_cache_ttl` default.
pub const DEFAULT_ENDPOINT_CACHE_TTL: Duration = Duration::from_secs(1);
/// `endpoint_max_stale` default.
pub const DEFAULT_ENDPOINT_MAX_STALE: Duration = Duration::from_secs(5);
/// `max_retry_body` default: 64 KiB.
pub const DEFAULT_MAX_RETRY_BODY: usize = 64 * 1024;
/// `function_cache_ttl` default.
pub const DEFAULT_FUNCTION_CACHE_TTL: Duration = Duration::from_secs(5);
/// `provider_timeout` default.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// `scale_from_zero` default.
pub const DEFAULT_SCALE_FROM_ZERO: bool = true;
/// `scale_from_zero_timeout` default.
pub const DEFAULT_SCALE_FROM_ZERO_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `gateway` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `port` (8080): listen port (all interfaces).
    pub port: u16,
    /// `functions_provider_url` (`http://127.0.0.1:8081`): the faas-provider API. Plain
    /// `http://`; a path prefix is kept (`http://host/provider` → `/provider/system/...`).
    pub provider_url: ProviderUrl,
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
    /// `publish_timeout` (`5s`): how long an async submission waits for JetStream to
    /// acknowledge it before answering `503`.
    pub publish_timeout: Duration,
    /// `endpoint_cache_ttl` (`1s`): how long a function's replica list is used before it is
    /// fetched again from the provider (in the background; a failed replica forces it).
    pub endpoint_cache_ttl: Duration,
    /// `endpoint_max_stale` (`5s`): the oldest a replica list may be and still be used
    /// while it is refreshed in the background; an older one (a function idle for a while)
    /// is fetched again before the call. At or below `endpoint_cache_ttl`, an outdated list
    /// is never used. Replicas the provider stopped listing are gone from the gateway within
    /// this time.
    pub endpoint_max_stale: Duration,
    /// `max_retry_body` (`64KiB` as bytes: 65536): a sync call whose request body is at most
    /// this big, with its size known up front (`Content-Length`), is read into memory first,
    /// so that it can be sent to another replica when connecting to the first one fails.
    /// Calls without a body are always retryable; streamed or bigger bodies are forwarded
    /// as they arrive and not retried. `0`: only calls without a body are retried.
    pub max_retry_body: usize,
    /// `function_cache_ttl` (`5s`): how long the gateway remembers that a function exists
    /// (and its queue) for async submissions.
    pub function_cache_ttl: Duration,
    /// `provider_timeout` (`5s`): timeout of the gateway's own provider look-ups (endpoints,
    /// function status, health).
    pub provider_timeout: Duration,
    /// `scale_from_zero` (`true`, OpenFaaS's name): a sync call (async calls reach the
    /// function through the sync route, so they too) to a function with no ready replica is
    /// held until one is ready, the function being scaled up first when it has zero desired
    /// replicas. `false`: such calls get `503` at once.
    pub scale_from_zero: bool,
    /// `scale_from_zero_timeout` (`30s`): how long a call is held waiting for a replica to
    /// become ready; past it the answer is `503`. The wait does not count toward
    /// `upstream_timeout`, which starts when the call is sent.
    pub scale_from_zero_timeout: Duration,
    /// `basic_auth` (`false`; `true` in compose) and `secret_mount_path` (`/run/secrets`):
    /// whether `/system/*` requires the basic-auth credentials in `basic-auth-user` and
    /// `basic-auth-password` of that folder (generated on first start if absent), which the
    /// gateway also sends on every call it makes to the provider.
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        let positive = |name: &str, default: Duration| {
            env::parse_or(e, name, default, |v| {
                match ferry_proto::duration::parse(v) {
                    Ok(d) if d.is_zero() => Err("must be greater than zero".to_string()),
                    Ok(d) => Ok(d),
                    Err(err) => Err(err.to_string()),
                }
            })
        };
        Ok(Config {
            port: env::number_or(e, "port", DEFAULT_PORT)?,
            provider_url: env::parse_or(
                e,
                "functions_provider_url",
                ProviderUrl::parse(DEFAULT_PROVIDER_URL).expect("valid default"),
                ProviderUrl::parse,
            )?,
            nats: NatsConfig::from_env(e)?,
            upstream_timeout: positive("upstream_timeout", DEFAULT_UPSTREAM_TIMEOUT)?,
            max_async_body: env::parse_or(e, "max_async_body", DEFAULT_MAX_ASYNC_BODY, |v| {
                match parse_size(v) {
                    Some(0) => Err("must be greater than zero".to_string()),
                    Some(n) => Ok(n),
                    None => Err("expected a size in bytes, e.g. 524288, 512KiB or 1MB".into()),
                }
            })?,
            max_retry_body: env::parse_or(e, "max_retry_body", DEFAULT_MAX_RETRY_BODY, |v| {
                parse_size(v).ok_or_else(|| "expected a size in bytes, e.g. 65536 or 64KiB".into())
            })?,
            publish_timeout: positive("publish_timeout", DEFAULT_PUBLISH_TIMEOUT)?,
            endpoint_cache_ttl: env::duration_or(
                e,
                "endpoint_cache_ttl",
                DEFAULT_ENDPOINT_CACHE_TTL,
            )?,
            endpoint_max_stale: env::duration_or(
                e,
                "endpoint_max_stale",
                DEFAULT_ENDPOINT_MAX_STALE,
            )?,
            function_cache_ttl: env::duration_or(
                e,
                "function_cache_ttl",
                DEFAULT_FUNCTION_CACHE_TTL,
            )?,
            provider_timeout: positive("provider_timeout", DEFAULT_PROVIDER_TIMEOUT)?,
            scale_from_zero: env::bool_or(e, "scale_from_zero", DEFAULT_SCALE_FROM_ZERO)?,
            scale_from_zero_timeout: positive(
                "scale_from_zero_timeout",
                DEFAULT_SCALE_FROM_ZERO_TIMEOUT,
            )?,
            auth: AuthConfig::from_env(e)?,
        })
    }
}

/// The provider's base URL, split once so that request URIs are built without parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrl {
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl ProviderUrl {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(s: &str) -> Result<ProviderUrl, String> {
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("not a URL ({e}); expected e.g. http://provider:8081"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err("expected an http:// URL, e.g. http://provider:8081".into());
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or("the URL has no host; expected e.g. http://provider:8081")?;
        if uri.query().is_some() {
            return Err("the URL must not have a query string".into());
        }
        Ok(ProviderUrl {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// `http://<authority><prefix><path_and_query>`.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let pq = if self.prefix.is_empty() {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.prefix)
        };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

impl std::fmt::Display for ProviderUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// `524288`, `512KiB`, `512KB`, `1MiB`, `1MB`, `512k`: binary units either way, since
/// nobody sizes message payloads in powers of ten.
fn parse_size(v: &str) -> Option<usize> {
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
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults() {
        let c = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.provider_url.to_string(), "http://127.0.0.1:8081");
        assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(c.nats.call_status_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(
            c.nats.dead_letter_max_age,
            Duration::from_secs(14 * 24 * 3600)
        );
        assert_eq!(c.upstream_timeout, Duration::from_secs(60));
        assert_eq!(c.max_async_body, 512 * 1024);
        assert_eq!(c.publish_timeout, Duration::from_secs(5));
        assert_eq!(c.endpoint_cache_ttl, Duration::from_secs(1));
        assert_eq!(c.endpoint_max_stale, Duration::from_secs(5));
        assert_eq!(c.max_retry_body, 64 * 1024);
        assert_eq!(c.function_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.provider_timeout, Duration::from_secs(5));
        assert!(c.scale_from_zero);
        assert_eq!(c.scale_from_zero_timeout, Duration::from_secs(30));
        assert!(!c.auth.enabled);
        assert_eq!(
            c.auth.secret_mount_path,
            std::path::PathBuf::from("/run/secrets")
        );
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
            ("scale_from_zero", "false"),
            ("scale_from_zero_timeout", "3s"),
            ("basic_auth", "true"),
            ("secret_mount_path", "/var/secrets"),
        ]
        .into();
        let c = Config::from_env(&e).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.provider_url.authority.as_str(), "provider:8081");
        assert_eq!(c.provider_url.prefix, "/api");
        assert_eq!(
            c.provider_url.uri("/system/functions").unwrap().to_string(),
            "http://provider:8081/api/system/functions"
        );
        assert_eq!(c.nats.url, "nats://nats:4222");
        assert_eq!(c.upstream_timeout, Duration::from_secs(120));
        assert_eq!(c.max_async_body, 1024 * 1024);
        assert_eq!(c.endpoint_cache_ttl, Duration::ZERO);
        assert_eq!(c.endpoint_max_stale, Duration::from_millis(2500));
        assert_eq!(c.max_retry_body, 0);
        assert!(!c.scale_from_zero);
        assert_eq!(c.scale_from_zero_timeout, Duration::from_secs(3));
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
            ("scale_from_zero", "maybe"),
            ("scale_from_zero_timeout", "0"),
            ("basic_auth", "sometimes"),
        ] {
            let e: HashMap<&str, &str> = [(name, value)].into();
            let err = Config::from_env(&e).expect_err(value);
            assert_eq!(err.name, name, "{err}");
        }
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
