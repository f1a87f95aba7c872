//! `queue-worker` settings: declared once in [`Settings`] (clap: variable, flag, default,
//! parser, `--help`), then resolved into the [`Config`] the worker runs with.

use std::net::IpAddr;
use std::time::Duration;

use ferry_invoke::Settings as InvokeSettings;
use ferry_proto::jetstream::{DEFAULT_QUEUE, valid_queue_name};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::callback_guard::CallbackGuard;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use ferry_runtime::listen::{Bind, Exposure};
use ferry_runtime::settings;
use ferry_runtime::telemetry::Logging;

use crate::error::InvalidConfig;
use crate::policy::{self, Backoff, RetryPolicy};
use crate::signing::{KeyFile, KeyFileSetting};

/// Default `port` (the gateway has 8080, the provider 8081, the CE gateway's metrics 8082).
pub const DEFAULT_PORT: u16 = 8083;
/// Default `max_retry_wait` and `callback_max_wait` (raised to the initial wait if that is
/// longer).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// Shortest `ack_wait` accepted: leases are renewed every third of it.
pub const MIN_ACK_WAIT: Duration = Duration::from_secs(1);

/// Every setting of `queue-worker`, as declared: the environment variable (or flag), its
/// default and its parser. [`Config::resolve`] turns it into the [`Config`].
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// NATS.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Reaching functions.
    #[command(flatten)]
    pub invoke: InvokeSettings,
    /// `basic_auth`, `secret_mount_path`.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// Queue served (letters, digits, '-', '_'): consumers ferry-workers-<queue> and
    /// ferry-callbacks-<queue>.
    #[arg(long = "queue_name", env = "queue_name", default_value = DEFAULT_QUEUE,
          value_parser = queue)]
    pub queue_name: String,
    /// Calls this worker runs at once (callback retries: as many again).
    #[arg(long = "max_inflight", env = "max_inflight", default_value = "64",
          value_parser = inflight)]
    pub max_inflight: usize,
    /// Calls of one function run at once (at most max_inflight); unset: max_inflight / 2, at
    /// least 1.
    #[arg(long = "max_inflight_per_function", env = "max_inflight_per_function",
          value_parser = per_function)]
    pub max_inflight_per_function: Option<usize>,
    /// JetStream lease of a call, renewed every third of it while the call runs: how soon a
    /// dead worker's calls are redelivered (at least 1s).
    #[arg(long = "ack_wait", env = "ack_wait", default_value = "30s", value_parser = ack_wait)]
    pub ack_wait: Duration,
    /// Unacknowledged calls the shared consumer allows across all workers of the queue (at
    /// least max_inflight).
    #[arg(long = "max_ack_pending", env = "max_ack_pending", default_value = "10000",
          value_parser = ack_pending)]
    pub max_ack_pending: usize,
    /// How long a call may run when its function declares no timeout (com.openfaas.timeout,
    /// or its watchdog's exec_timeout/write_timeout).
    #[arg(long = "upstream_timeout", env = "upstream_timeout", default_value = "5m",
          value_parser = positive)]
    pub upstream_timeout: Duration,
    /// The longest any call may run; past its timeout a call ends timed_out.
    #[arg(long = "max_call_duration", env = "max_call_duration", default_value = "24h",
          value_parser = at_least_1s)]
    pub max_call_duration: Duration,
    /// Deliveries of a call whose workers died before it is dead-lettered (max_deliveries)
    /// instead of run again (1 to 1000).
    #[arg(long = "max_deliveries", env = "max_deliveries", default_value = "10",
          value_parser = deliveries)]
    pub max_deliveries: u32,
    /// Largest result kept in memory (for callback retries and dead letters); larger ones
    /// stream to the callback once.
    #[arg(long = "max_buffered_result", env = "max_buffered_result", default_value = "1MiB",
          value_parser = result_size)]
    pub max_buffered_result: usize,
    /// Memory all results kept in memory may take at once; past it results stream.
    #[arg(long = "result_memory", env = "result_memory", default_value = "8MiB",
          value_parser = result_size)]
    pub result_memory: usize,
    /// Invocations per call, the first included, 1 to 100 (annotation
    /// com.openfaas.retry.attempts).
    #[arg(long = "max_retry_attempts", env = "max_retry_attempts", default_value = "10",
          value_parser = attempts)]
    pub max_retry_attempts: u32,
    /// First retry delay, doubling per retry (annotation com.openfaas.retry.min_wait).
    #[arg(long = "initial_retry_wait", env = "initial_retry_wait", default_value = "1s",
          value_parser = wait)]
    pub initial_retry_wait: Duration,
    /// Longest retry delay (a Retry-After may exceed it, up to 1h); unset: 60s, or
    /// initial_retry_wait if that is longer (annotation com.openfaas.retry.max_wait).
    #[arg(long = "max_retry_wait", env = "max_retry_wait", value_parser = wait)]
    pub max_retry_wait: Option<Duration>,
    /// Function statuses that are retried (annotation com.openfaas.retry.codes).
    #[arg(long = "retry_http_codes", env = "retry_http_codes",
          default_value = "408,429,500,502,503,504", value_parser = codes)]
    pub retry_http_codes: std::vec::Vec<u16>,
    /// Retry calls that ran out of their timeout (annotation com.openfaas.retry.on_timeout).
    #[arg(long = "retry_timed_out", env = "retry_timed_out", default_value = "false",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub retry_timed_out: bool,
    /// Oldest a call may be when it would be invoked, 0 = no limit; older ones are
    /// dead-lettered as expired (annotation com.openfaas.retry.max_age).
    #[arg(long = "max_event_age", env = "max_event_age", default_value = "0",
          value_parser = settings::duration)]
    pub max_event_age: Duration,
    /// Longest callback POST (for a streamed result: after the function's body ended).
    #[arg(long = "callback_timeout", env = "callback_timeout", default_value = "10s",
          value_parser = positive)]
    pub callback_timeout: Duration,
    /// Deliveries tried per callback, the first included, 1 to 100; then callback_failed.
    #[arg(long = "callback_max_attempts", env = "callback_max_attempts", default_value = "8",
          value_parser = attempts)]
    pub callback_max_attempts: u32,
    /// First callback retry delay, doubling per retry.
    #[arg(long = "callback_initial_wait", env = "callback_initial_wait", default_value = "1s",
          value_parser = wait)]
    pub callback_initial_wait: Duration,
    /// Longest callback retry delay (equal jitter); unset: 60s, or callback_initial_wait if
    /// that is longer.
    #[arg(long = "callback_max_wait", env = "callback_max_wait", value_parser = wait)]
    pub callback_max_wait: Option<Duration>,
    /// `callback_allow`, `callback_deny`.
    #[command(flatten)]
    pub callback_guard: CallbackGuard,
    /// `callback_signing_key_file`.
    #[command(flatten)]
    pub callback_signing_key_file: KeyFileSetting,
    /// On SIGTERM, how long running calls get to finish.
    #[arg(long = "shutdown_grace", env = "shutdown_grace", default_value = "30s",
          value_parser = settings::duration)]
    pub shutdown_grace: Duration,
    /// How long one pull request waits at the server (100ms to 60s).
    #[arg(long = "pull_expires", env = "pull_expires", default_value = "2s",
          value_parser = pull_expires)]
    pub pull_expires: Duration,
    /// /healthz and /metrics listen port.
    #[arg(long = "port", env = "port", default_value_t = DEFAULT_PORT,
          value_parser = settings::number::<u16>)]
    pub port: u16,
    /// `bind`: any address is accepted (health and metrics only).
    #[command(flatten)]
    pub bind: Bind,
    /// `log_format`.
    #[command(flatten)]
    pub logging: Logging,
}

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
        Config::resolve(settings::from_env(e)?)
    }

    /// The configuration `s` gives, checking the settings that depend on each other
    /// (`max_ack_pending` and `max_inflight`, maximum and initial waits).
    pub fn resolve(s: Settings) -> Result<Config, EnvError> {
        if s.max_ack_pending < s.max_inflight {
            return Err(EnvError {
                name: "max_ack_pending".into(),
                value: s.max_ack_pending.to_string(),
                reason: format!("must be at least max_inflight ({})", s.max_inflight),
            });
        }
        let retry_backoff = backoff(
            ("initial_retry_wait", s.initial_retry_wait),
            ("max_retry_wait", s.max_retry_wait),
        )?;
        let callback_backoff = backoff(
            ("callback_initial_wait", s.callback_initial_wait),
            ("callback_max_wait", s.callback_max_wait),
        )?;
        let max_inflight_per_function = match s.max_inflight_per_function {
            Some(n) => n.min(s.max_inflight),
            None => (s.max_inflight / 2).max(1),
        };
        Ok(Config {
            callback_signing_key_file: KeyFile::resolve(
                s.callback_signing_key_file,
                &s.auth.secret_mount_path,
            ),
            bind: s.bind.address(s.auth.enabled, false, Exposure::Observe)?,
            nats: s.nats,
            invoke: s.invoke,
            auth: s.auth,
            queue_name: s.queue_name,
            max_inflight: s.max_inflight,
            ack_wait: s.ack_wait,
            max_ack_pending: s.max_ack_pending,
            upstream_timeout: s.upstream_timeout,
            max_call_duration: s.max_call_duration,
            max_deliveries: s.max_deliveries,
            max_buffered_result: s.max_buffered_result,
            result_memory: s.result_memory,
            callback_timeout: s.callback_timeout,
            shutdown_grace: s.shutdown_grace,
            pull_expires: s.pull_expires,
            port: s.port,
            retry: RetryPolicy {
                max_attempts: s.max_retry_attempts,
                codes: s.retry_http_codes,
                backoff: retry_backoff,
                max_age: s.max_event_age,
                on_timeout: s.retry_timed_out,
            },
            max_inflight_per_function,
            callback_max_attempts: s.callback_max_attempts,
            callback_backoff,
            callback_guard: s.callback_guard,
        })
    }

    /// Checks a configuration built by hand (fields are public) the way
    /// [`from_env`](Self::from_env) checks the environment.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !valid_queue_name(&self.queue_name) {
            return Err(InvalidConfig::QueueName(self.queue_name.clone()));
        }
        if self.max_inflight == 0 || self.max_ack_pending < self.max_inflight {
            return Err(InvalidConfig::Inflight);
        }
        if self.ack_wait < MIN_ACK_WAIT {
            return Err(InvalidConfig::AckWait);
        }
        if self.upstream_timeout.is_zero()
            || self.callback_timeout.is_zero()
            || self.pull_expires < Duration::from_millis(100)
        {
            return Err(InvalidConfig::Timeouts);
        }
        let attempts = 1..=policy::MAX_ATTEMPTS_LIMIT;
        if !attempts.contains(&self.retry.max_attempts)
            || !attempts.contains(&self.callback_max_attempts)
        {
            return Err(InvalidConfig::Attempts);
        }
        for b in [self.retry.backoff, self.callback_backoff] {
            if b.min_wait.is_zero() || b.max_wait < b.min_wait {
                return Err(InvalidConfig::Waits);
            }
        }
        if self.max_deliveries == 0 || self.max_call_duration.is_zero() {
            return Err(InvalidConfig::Deliveries);
        }
        if self.max_buffered_result < 1024 || self.result_memory < 1024 {
            return Err(InvalidConfig::ResultSizes);
        }
        if self.max_inflight_per_function == 0 {
            return Err(InvalidConfig::PerFunction);
        }
        Ok(())
    }
}

/// A backoff from an initial and a maximum wait (unset: [`DEFAULT_MAX_WAIT`], raised to the
/// initial); the maximum may not be below the initial.
fn backoff(
    (min_name, min_wait): (&str, Duration),
    (max_name, max_wait): (&str, Option<Duration>),
) -> Result<Backoff, EnvError> {
    let max_wait = match max_wait {
        None => DEFAULT_MAX_WAIT.max(min_wait),
        Some(d) if d < min_wait => {
            return Err(EnvError {
                name: max_name.into(),
                value: ferry_proto::duration::format(d),
                reason: format!(
                    "must be at least {min_name} ({})",
                    ferry_proto::duration::format(min_wait)
                ),
            });
        }
        Some(d) => d,
    };
    Ok(Backoff { min_wait, max_wait })
}

// === value parsers ===

/// A duration of at least `min`.
fn at_least(v: &str, min: Duration) -> Result<Duration, String> {
    let d = settings::duration(v)?;
    if d < min {
        return Err(format!(
            "must be at least {}",
            ferry_proto::duration::format(min)
        ));
    }
    Ok(d)
}

fn positive(v: &str) -> Result<Duration, String> {
    at_least(v, Duration::from_millis(1))
}

fn at_least_1s(v: &str) -> Result<Duration, String> {
    at_least(v, Duration::from_secs(1))
}

fn ack_wait(v: &str) -> Result<Duration, String> {
    at_least(v, MIN_ACK_WAIT)
}

fn pull_expires(v: &str) -> Result<Duration, String> {
    match at_least(v, Duration::from_millis(100))? {
        d if d > Duration::from_secs(60) => Err("must be at most 60s".into()),
        d => Ok(d),
    }
}

/// A size of at least 1 KiB.
fn result_size(v: &str) -> Result<usize, String> {
    match env_size(v)? {
        n if n >= 1024 => Ok(n),
        _ => Err("must be at least 1KiB".to_string()),
    }
}

fn env_size(v: &str) -> Result<usize, String> {
    ferry_runtime::env::parse_size(v)
        .ok_or_else(|| "expected a size in bytes, e.g. 1048576 or 1MiB".into())
}

fn queue(v: &str) -> Result<String, String> {
    let v = v.trim();
    if valid_queue_name(v) {
        Ok(v.to_string())
    } else {
        Err("use letters, digits, '-' and '_' (at most 64)".into())
    }
}

fn inflight(v: &str) -> Result<usize, String> {
    match settings::number::<usize>(v)? {
        n if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("expected 1 to 100000".into()),
    }
}

fn per_function(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a number of at least 1".into()),
    }
}

fn ack_pending(v: &str) -> Result<usize, String> {
    match settings::number::<usize>(v)? {
        n if n <= i64::MAX as usize => Ok(n),
        _ => Err(format!("must be at most {}", i64::MAX)),
    }
}

fn deliveries(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err("expected 1 to 1000".into()),
    }
}

fn attempts(v: &str) -> Result<u32, String> {
    policy::parse_attempts(v.trim())
}

fn wait(v: &str) -> Result<Duration, String> {
    policy::parse_wait(v.trim())
}

fn codes(v: &str) -> Result<Vec<u16>, String> {
    policy::parse_codes(v.trim())
}

#[cfg(test)]
mod tests;
