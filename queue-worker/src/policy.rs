//! The retry policy: which failures are retried, how often, after how long, and how old a call
//! may get.
//!
//! Worker-wide defaults come from the environment (`max_retry_attempts`, `initial_retry_wait`,
//! `max_retry_wait`, `retry_http_codes`, `max_event_age`); a function overrides them with its
//! annotations `com.openfaas.retry.attempts`, `.codes`, `.min_wait`, `.max_wait` and
//! `com.openfaas.retry.max_age` and `com.openfaas.retry.on_timeout`, which the gateway copies
//! into each queued call. An annotation
//! that cannot be read is ignored with a warning naming it: the worker default applies.
//!
//! **Retryable** ([`RetryPolicy::is_retryable`]): a function that could not be reached (no
//! ready replica in time, connection refused or broken), a status in the retry codes, or any
//! non-2xx answer carrying `X-OpenFaaS-Internal` (the platform, not the function, failed). A
//! call that ran out of its own timeout is retried only with `on_timeout`; one whose function
//! no longer exists never.
//!
//! **Delays** ([`Backoff::delay`]): `min_wait` doubling per retry, capped at `max_wait`, with
//! equal jitter (50–100 % of that), never below `min_wait`. A `Retry-After` header (seconds or
//! an HTTP date) on a 429 or 503 replaces the computed delay ([`retry_after`]); it is floored
//! at `min_wait` and honoured above `max_wait`, up to [`MAX_RETRY_AFTER`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ferry_proto::headers::OPENFAAS_INTERNAL;
use ferry_proto::labels;
use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};

use crate::WorkerError;
use crate::invoke::FunctionResponse;

/// Most invocations a call may get (status records keep every attempt).
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Default `retry_http_codes` (the setting's declaration, `config::Settings`, holds it as
/// text), for tests.
#[cfg(test)]
pub const DEFAULT_RETRY_CODES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// Exponential backoff with equal jitter between two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, and the floor of every delay.
    pub min_wait: Duration,
    /// The largest computed delay.
    pub max_wait: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (1 for the first retry): `min_wait · 2^(retry-1)`
    /// capped at `max_wait`, times `0.5 + jitter / 2` (`jitter` in `0..=1`), at least
    /// `min_wait`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(32);
        let full = self
            .min_wait
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_wait);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
            .max(self.min_wait)
    }

    /// [`delay`](Self::delay) with a random jitter.
    pub fn random_delay(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}

/// How a call is retried and how old it may get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Invocations allowed, the first included (1 = never retried).
    pub max_attempts: u32,
    /// Statuses that are retried.
    pub codes: Vec<u16>,
    /// Delays between invocations.
    pub backoff: Backoff,
    /// Oldest a call may be when it is (re)invoked; zero for no limit.
    pub max_age: Duration,
    /// Whether a call that ran out of its timeout is retried (`retry_timed_out`, annotation
    /// `com.openfaas.retry.on_timeout`); by default it ends `timed_out`.
    pub on_timeout: bool,
}

impl RetryPolicy {
    /// The policy for a function with `annotations`, and a warning for each annotation that
    /// could not be used.
    pub fn for_function(
        &self,
        annotations: &BTreeMap<String, String>,
    ) -> (RetryPolicy, Vec<String>) {
        let mut policy = self.clone();
        let mut warnings = Vec::new();
        let mut read = |key: &str, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
            if let Some(value) = annotations.get(key) {
                if let Err(reason) = apply(value.trim()) {
                    warnings.push(format!(
                        "annotation {key}={value:?} ignored ({reason}); using the worker default"
                    ));
                }
            }
        };
        read(labels::RETRY_ATTEMPTS, &mut |v| {
            policy.max_attempts = parse_attempts(v)?;
            Ok(())
        });
        read(labels::RETRY_CODES, &mut |v| {
            policy.codes = parse_codes(v)?;
            Ok(())
        });
        read(labels::RETRY_MIN_WAIT, &mut |v| {
            policy.backoff.min_wait = parse_wait(v)?;
            Ok(())
        });
        read(labels::RETRY_MAX_WAIT, &mut |v| {
            policy.backoff.max_wait = parse_wait(v)?;
            Ok(())
        });
        read(labels::RETRY_MAX_AGE, &mut |v| {
            policy.max_age = parse_duration(v)?;
            Ok(())
        });
        read(labels::RETRY_ON_TIMEOUT, &mut |v| {
            policy.on_timeout = match v {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err("expected true or false".into()),
            };
            Ok(())
        });
        if policy.backoff.max_wait < policy.backoff.min_wait {
            warnings.push(format!(
                "retry max_wait {} is below min_wait {}; using min_wait for both",
                ferry_proto::duration::format(policy.backoff.max_wait),
                ferry_proto::duration::format(policy.backoff.min_wait)
            ));
            policy.backoff.max_wait = policy.backoff.min_wait;
        }
        (policy, warnings)
    }

    /// Whether an invocation that ended with `outcome` should be retried (attempts allowing):
    /// a function that answered with a retry code (or the platform failing for it), a
    /// function that could not be reached; a call that ran out of its timeout only when the
    /// policy says so; never a function that does not exist.
    pub fn is_retryable(&self, outcome: &Result<FunctionResponse, WorkerError>) -> bool {
        match outcome {
            Err(WorkerError::Timeout(_)) => self.on_timeout,
            Err(WorkerError::Invoke(ferry_invoke::InvokeError::FunctionNotFound(_))) => false,
            Err(_) => true,
            Ok(response) => {
                let status = response.status;
                self.codes.contains(&status.as_u16())
                    || (!status.is_success() && response.headers.contains_key(OPENFAAS_INTERNAL))
            }
        }
    }

    /// The delay before retry number `retry` after `outcome`: `Retry-After` when the answer
    /// carries a usable one, else the backoff.
    pub fn retry_delay(
        &self,
        retry: u32,
        outcome: &Result<FunctionResponse, WorkerError>,
        now: SystemTime,
    ) -> Duration {
        let asked = outcome
            .as_ref()
            .ok()
            .and_then(|r| retry_after(r.status, &r.headers, now));
        match asked {
            Some(d) => d.max(self.backoff.min_wait).min(MAX_RETRY_AFTER),
            None => self.backoff.random_delay(retry),
        }
    }
}

/// The wait a 429 or 503 answer asks for with `Retry-After` (delay-seconds or an HTTP date);
/// `None` for other statuses or an unreadable header. A date in the past means no wait.
pub fn retry_after(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if !matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(MAX_RETRY_AFTER.as_secs())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `max_retry_attempts` / `com.openfaas.retry.attempts`: 1 to [`MAX_ATTEMPTS_LIMIT`].
pub fn parse_attempts(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_ATTEMPTS_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("expected 1 to {MAX_ATTEMPTS_LIMIT}")),
    }
}

/// `retry_http_codes` / `com.openfaas.retry.codes`: a comma-separated list of statuses.
pub fn parse_codes(v: &str) -> Result<Vec<u16>, String> {
    let mut codes = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            _ => return Err(format!("{part:?} is not an HTTP status")),
        }
    }
    if codes.is_empty() {
        return Err("expected a comma-separated list of statuses".into());
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// A retry wait: a duration of at least 1 ms.
pub fn parse_wait(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(d)
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    ferry_proto::duration::parse(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
