//! `queue-worker` settings, from environment variables.

use std::net::IpAddr;
use std::time::Duration;

use ferry_invoke::Settings as InvokeSettings;
use ferry_proto::jetstream::{DEFAULT_QUEUE, valid_queue_name};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::callback_guard::CallbackGuard;
use ferry_runtime::env::{self, Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use ferry_runtime::listen::{self, Exposure};

use crate::policy::{self, Backoff, DEFAULT_RETRY_CODES, RetryPolicy};
use crate::signing::KeyFile;

/// Default `port` (the gateway has 8080, the provider 8081, the CE gateway's metrics 8082).
pub const DEFAULT_PORT: u16 = 8083;
/// Default `max_call_duration`.
pub const DEFAULT_MAX_CALL_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Default `max_deliveries`.
pub const DEFAULT_MAX_DELIVERIES: u32 = 10;
/// Default `max_buffered_result`.
pub const DEFAULT_MAX_BUFFERED_RESULT: usize = 1024 * 1024;
/// Default `result_memory`.
pub const DEFAULT_RESULT_MEMORY: usize = 8 * 1024 * 1024;
/// Default `max_inflight`.
pub const DEFAULT_MAX_INFLIGHT: usize = 64;
/// Default `max_ack_pending`.
pub const DEFAULT_MAX_ACK_PENDING: usize = 10_000;
/// Shortest `ack_wait` accepted: leases are renewed every third of it.
pub const MIN_ACK_WAIT: Duration = Duration::from_secs(1);
/// Default `max_retry_attempts`: invocations per call, the first included.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 10;
/// Default `initial_retry_wait`.
pub const DEFAULT_INITIAL_RETRY_WAIT: Duration = Duration::from_secs(1);
/// Default `max_retry_wait`.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Default `callback_max_attempts`.
pub const DEFAULT_CALLBACK_MAX_ATTEMPTS: u32 = 8;
/// Default `callback_initial_wait`.
pub const DEFAULT_CALLBACK_INITIAL_WAIT: Duration = Duration::from_secs(1);
/// Default `callback_max_wait`.
pub const DEFAULT_CALLBACK_MAX_WAIT: Duration = Duration::from_secs(60);

/// Everything `queue-worker` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `nats_url` & co: the NATS server and the calls stream's settings.
    pub nats: NatsConfig,
    /// `functions_provider_url`, `provider_timeout`, `endpoint_cache_ttl`,
    /// `endpoint_max_stale`, `function_cache_ttl`, `scale_from_zero`,
    /// `scale_from_zero_timeout`: functions are invoked straight at a ready replica, found,
    /// balanced and scaled from zero as the gateway does it (`ferry_invoke::Settings`).
    pub invoke: InvokeSettings,
    /// `basic_auth` (`false`) and `secret_mount_path` (`/run/secrets`): the credentials sent
    /// to the provider (read, never generated: the gateway writes them).
    pub auth: AuthConfig,
    /// `queue_name` (`faas-request`): the queue this worker serves; its consumer is
    /// `ferry-workers-<queue_name>`, filtered on `ferry.calls.<queue_name>.>`.
    pub queue_name: String,
    /// `max_inflight` (64): calls this worker runs at once. It never holds more messages than
    /// it has free slots.
    pub max_inflight: usize,
    /// `ack_wait` (`30s`): the JetStream lease of a delivered call. Renewed every third of it
    /// while the call runs, so it bounds how fast a dead worker's calls are redelivered, not
    /// how long a call may take.
    pub ack_wait: Duration,
    /// `max_ack_pending` (10000): calls the shared consumer lets all its workers hold unacked
    /// at once; keep it above `max_inflight` times the number of workers.
    pub max_ack_pending: usize,
    /// `upstream_timeout` (`5m`): how long one call may run, body included, when its function
    /// declares no timeout of its own (`com.openfaas.timeout`, or its watchdog's
    /// `exec_timeout`/`write_timeout`). A call that runs out ends `timed_out`.
    pub upstream_timeout: Duration,
    /// `max_call_duration` (`24h`): the longest any call may run, whatever its function
    /// declares.
    pub max_call_duration: Duration,
    /// `max_deliveries` (10): deliveries of one message (each after a worker died or lost it
    /// mid-call) before the call is dead-lettered as `max_deliveries` instead of run again.
    pub max_deliveries: u32,
    /// `max_buffered_result` (`1MiB`): the largest function response kept in memory (for
    /// callback retries and dead letters); larger ones stream to the callback once.
    pub max_buffered_result: usize,
    /// `result_memory` (`8MiB`): the memory all calls of this worker may hold for responses at
    /// once; a response that finds it spent streams to its callback.
    pub result_memory: usize,
    /// `callback_timeout` (`10s`): the longest one callback POST may take.
    pub callback_timeout: Duration,
    /// `shutdown_grace` (`30s`): on SIGTERM, how long in-flight calls get to finish; calls still
    /// running then are left unacked and JetStream redelivers them after `ack_wait`.
    pub shutdown_grace: Duration,
    /// `pull_expires` (`2s`): how long one pull request waits at the server for messages. It
    /// also bounds how long a stopping worker waits for its last pull to end.
    pub pull_expires: Duration,
    /// `port` (8083): listen port of `/healthz` and `/metrics`.
    pub port: u16,
    /// `bind` (`127.0.0.1`; `0.0.0.0` with `basic_auth=true`): their listen address, any
    /// address allowed ([`ferry_runtime::listen`]).
    pub bind: IpAddr,
    /// The default retry policy: `max_retry_attempts` (10 invocations, the first included),
    /// `initial_retry_wait` (`1s`), `max_retry_wait` (`60s`), `retry_http_codes`
    /// (`408,429,500,502,503,504`) and `max_event_age` (`0`: no limit). Functions override
    /// them with `com.openfaas.retry.*` annotations.
    pub retry: RetryPolicy,
    /// `max_inflight_per_function` (half of `max_inflight`, at least 1): calls of one function
    /// this worker runs at once; more are handed back for a moment, uncounted.
    pub max_inflight_per_function: usize,
    /// `callback_max_attempts` (8): deliveries tried for one callback, the first included;
    /// then the call is dead-lettered as `callback_failed`.
    pub callback_max_attempts: u32,
    /// `callback_initial_wait` (`1s`) and `callback_max_wait` (`60s`): delays between
    /// callback deliveries.
    pub callback_backoff: Backoff,
    /// `callback_allow` and `callback_deny` (both empty): where callbacks may go, besides the
    /// built-in denials of link-local, cloud metadata, unspecified and multicast addresses
    /// ([`ferry_runtime::callback_guard`]); every address a callback host resolves to is
    /// checked, and a refused callback fails for good (`callback_failed`).
    pub callback_guard: CallbackGuard,
    /// `callback_signing_key_file` (`<secret_mount_path>/callback-signing-key`): the key(s)
    /// callbacks are signed with, read once at start ([`crate::signing`]). Missing at the
    /// default path: callbacks go unsigned; missing at a path set explicitly: an error.
    pub callback_signing_key_file: KeyFile,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        let nats = NatsConfig::from_env(e)?;
        let queue_name = env::parse_or(e, "queue_name", DEFAULT_QUEUE.to_string(), parse_queue)?;
        let max_inflight = env::parse_or(e, "max_inflight", DEFAULT_MAX_INFLIGHT, parse_inflight)?;
        let max_ack_pending = env::parse_or(e, "max_ack_pending", DEFAULT_MAX_ACK_PENDING, |v| {
            match v.parse::<usize>() {
                Ok(n) if n >= max_inflight && n <= i64::MAX as usize => Ok(n),
                Ok(_) => Err(format!("must be at least max_inflight ({max_inflight})")),
                Err(err) => Err(err.to_string()),
            }
        })?;
        let at_least =
            |name: &str, default: Duration, min: Duration| at_least(e, name, default, min);
        let ms = Duration::from_millis;
        let pull_expires = at_least("pull_expires", Duration::from_secs(2), ms(100))?;
        if pull_expires > Duration::from_secs(60) {
            return Err(EnvError {
                name: "pull_expires".into(),
                value: ferry_proto::duration::format(pull_expires),
                reason: "must be at most 60s".into(),
            });
        }
        let max_inflight_per_function = env::parse_or(
            e,
            "max_inflight_per_function",
            (max_inflight / 2).max(1),
            |v| match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(max_inflight)),
                _ => Err("expected a number of at least 1".into()),
            },
        )?;
        let retry_backoff = backoff(
            e,
            ("initial_retry_wait", DEFAULT_INITIAL_RETRY_WAIT),
            ("max_retry_wait", DEFAULT_MAX_RETRY_WAIT),
        )?;
        let callback_backoff = backoff(
            e,
            ("callback_initial_wait", DEFAULT_CALLBACK_INITIAL_WAIT),
            ("callback_max_wait", DEFAULT_CALLBACK_MAX_WAIT),
        )?;
        let retry = retry_policy(e, retry_backoff)?;
        let size = |name: &str, default: usize| size(e, name, default);
        let auth = AuthConfig::from_env(e)?;
        Ok(Config {
            nats,
            invoke: InvokeSettings::from_env(e)?,
            callback_signing_key_file: KeyFile::from_env(e, &auth.secret_mount_path),
            auth,
            queue_name,
            max_inflight,
            ack_wait: at_least("ack_wait", Duration::from_secs(30), MIN_ACK_WAIT)?,
            max_ack_pending,
            upstream_timeout: at_least("upstream_timeout", Duration::from_secs(300), ms(1))?,
            max_call_duration: at_least(
                "max_call_duration",
                DEFAULT_MAX_CALL_DURATION,
                Duration::from_secs(1),
            )?,
            max_deliveries: env::parse_or(e, "max_deliveries", DEFAULT_MAX_DELIVERIES, |v| {
                parse_in(v, 1..=1000)
            })?,
            max_buffered_result: size("max_buffered_result", DEFAULT_MAX_BUFFERED_RESULT)?,
            result_memory: size("result_memory", DEFAULT_RESULT_MEMORY)?,
            callback_timeout: at_least("callback_timeout", Duration::from_secs(10), ms(1))?,
            shutdown_grace: env::duration_or(e, "shutdown_grace", Duration::from_secs(30))?,
            pull_expires,
            port: env::number_or(e, "port", DEFAULT_PORT)?,
            bind: listen::bind_from_env(e, Exposure::Observe)?,
            retry,
            max_inflight_per_function,
            callback_max_attempts: env::parse_or(
                e,
                "callback_max_attempts",
                DEFAULT_CALLBACK_MAX_ATTEMPTS,
                policy::parse_attempts,
            )?,
            callback_backoff,
            callback_guard: CallbackGuard::from_env(e)?,
        })
    }

    /// Checks a configuration built by hand (fields are public) the way
    /// [`from_env`](Self::from_env) checks the environment.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_queue_name(&self.queue_name) {
            return Err(format!("queue_name {:?} is not valid", self.queue_name));
        }
        if self.max_inflight == 0 || self.max_ack_pending < self.max_inflight {
            return Err("need 1 <= max_inflight <= max_ack_pending".into());
        }
        if self.ack_wait < MIN_ACK_WAIT {
            return Err("ack_wait must be at least 1s".into());
        }
        if self.upstream_timeout.is_zero()
            || self.callback_timeout.is_zero()
            || self.pull_expires < Duration::from_millis(100)
        {
            return Err("upstream_timeout, callback_timeout and pull_expires must be > 0".into());
        }
        let attempts = 1..=policy::MAX_ATTEMPTS_LIMIT;
        if !attempts.contains(&self.retry.max_attempts)
            || !attempts.contains(&self.callback_max_attempts)
        {
            return Err("max_retry_attempts and callback_max_attempts must be 1 to 100".into());
        }
        for b in [self.retry.backoff, self.callback_backoff] {
            if b.min_wait.is_zero() || b.max_wait < b.min_wait {
                return Err("retry waits must be > 0, the maximum at least the initial".into());
            }
        }
        if self.max_deliveries == 0 || self.max_call_duration.is_zero() {
            return Err("max_deliveries and max_call_duration must be > 0".into());
        }
        if self.max_buffered_result < 1024 || self.result_memory < 1024 {
            return Err("max_buffered_result and result_memory must be at least 1KiB".into());
        }
        if self.max_inflight_per_function == 0 {
            return Err("max_inflight_per_function must be at least 1".into());
        }
        Ok(())
    }
}

/// The worker-wide retry policy (`max_retry_attempts`, `retry_http_codes`, `max_event_age`,
/// `retry_timed_out`) with `backoff`.
fn retry_policy(e: &impl Env, backoff: Backoff) -> Result<RetryPolicy, EnvError> {
    Ok(RetryPolicy {
        max_attempts: env::parse_or(
            e,
            "max_retry_attempts",
            DEFAULT_MAX_RETRY_ATTEMPTS,
            policy::parse_attempts,
        )?,
        codes: env::parse_or(
            e,
            "retry_http_codes",
            DEFAULT_RETRY_CODES.to_vec(),
            policy::parse_codes,
        )?,
        backoff,
        max_age: env::duration_or(e, "max_event_age", Duration::ZERO)?,
        on_timeout: env::bool_or(e, "retry_timed_out", false)?,
    })
}

/// A duration of at least `min`.
fn at_least(
    e: &impl Env,
    name: &str,
    default: Duration,
    min: Duration,
) -> Result<Duration, EnvError> {
    env::parse_or(e, name, default, |v| {
        let d = ferry_proto::duration::parse(v).map_err(|err| err.to_string())?;
        if d < min {
            Err(format!(
                "must be at least {}",
                ferry_proto::duration::format(min)
            ))
        } else {
            Ok(d)
        }
    })
}

/// A size of at least 1 KiB.
fn size(e: &impl Env, name: &str, default: usize) -> Result<usize, EnvError> {
    env::parse_or(e, name, default, |v| match env::parse_size(v) {
        Some(n) if n >= 1024 => Ok(n),
        Some(_) => Err("must be at least 1KiB".to_string()),
        None => Err("expected a size in bytes, e.g. 1048576 or 1MiB".into()),
    })
}

fn parse_queue(v: &str) -> Result<String, String> {
    if valid_queue_name(v) {
        Ok(v.to_string())
    } else {
        Err("use letters, digits, '-' and '_' (at most 64)".into())
    }
}

fn parse_inflight(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        Ok(_) => Err("expected 1 to 100000".into()),
        Err(err) => Err(err.to_string()),
    }
}

/// A number in `range`.
fn parse_in(v: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("expected {} to {}", range.start(), range.end())),
    }
}

/// A backoff from an initial and a maximum wait variable; the maximum may not be below the
/// initial.
fn backoff(
    e: &impl Env,
    (min_name, min_default): (&str, Duration),
    (max_name, max_default): (&str, Duration),
) -> Result<Backoff, EnvError> {
    let min_wait = env::parse_or(e, min_name, min_default, policy::parse_wait)?;
    let max_wait = env::parse_or(e, max_name, max_default.max(min_wait), |v| {
        let d = policy::parse_wait(v)?;
        if d < min_wait {
            return Err(format!(
                "must be at least {min_name} ({})",
                ferry_proto::duration::format(min_wait)
            ));
        }
        Ok(d)
    })?;
    Ok(Backoff { min_wait, max_wait })
}

#[cfg(test)]
mod tests;
