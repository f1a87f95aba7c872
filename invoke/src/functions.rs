//! What the async path needs to know about a function, cached briefly: that it exists, the
//! queue its calls go to, the annotations the queue-worker acts on, how long one call of
//! it may run ([`FunctionInfo::timeout`]), and whether its calls need an API token
//! ([`FunctionInfo::auth_required`]). The gateway asks before it queues a call (and, with
//! `basic_auth` on, before it lets a caller without an `invoke` token call it), the
//! queue-worker before it invokes one.
//!
//! Kept for `function_cache_ttl`, then refreshed in the background while still used, up to
//! [`MAX_STALE_TTLS`] TTLs old; an older entry is fetched again before the submission (see
//! [`crate::cache`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::jetstream::{DEFAULT_QUEUE, call_subject, valid_queue_name};
use ferry_proto::{FunctionRef, FunctionStatus};
use futures_util::FutureExt as _;

use crate::cache::{Cache, Cached, Lookup};
use crate::error::InvokeError;
use crate::provider::ProviderClient;

/// Annotations with this prefix travel with each queued call (`com.openfaas.queue`,
/// `com.openfaas.retry.*`, ...), so the worker needs no provider look-up of its own.
const FORWARDED_ANNOTATIONS: &str = "com.openfaas.";

/// How many TTLs old an entry may be and still be used while it is refreshed.
const MAX_STALE_TTLS: u32 = 3;

/// The annotation (or label) setting how long one call of a function may run, e.g. `2h`.
pub const TIMEOUT: &str = "com.openfaas.timeout";

/// Added to a timeout taken from the function's watchdog settings, so that the watchdog's own
/// timeout answer arrives before the caller gives up.
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(2);

/// One function, as the async path sees it.
#[derive(Debug)]
pub struct FunctionInfo {
    /// The queue its calls go to.
    pub queue: String,
    /// The JetStream subject of its calls on that queue.
    pub subject: String,
    /// Its `com.openfaas.*` annotations.
    pub annotations: BTreeMap<String, String>,
    /// How long one call may run, as the function says (see [`call_timeout`]); `None` when it
    /// says nothing, and `Some(Duration::ZERO)` when it sets no limit.
    pub timeout: Option<Duration>,
    /// Whether its calls need an API token: the label (or annotation)
    /// `com.ferry.auth=required` ([`ferry_proto::labels::AUTH`]).
    pub auth_required: bool,
}

impl FunctionInfo {
    fn new(f: &FunctionRef, status: FunctionStatus) -> FunctionInfo {
        let queue = match status.annotations.get(ferry_proto::labels::QUEUE) {
            Some(q) if valid_queue_name(q) => q.clone(),
            Some(q) => {
                tracing::warn!(
                    function = %f, queue = %q,
                    "ignoring invalid {} annotation; using {DEFAULT_QUEUE}",
                    ferry_proto::labels::QUEUE
                );
                DEFAULT_QUEUE.to_string()
            }
            None => DEFAULT_QUEUE.to_string(),
        };
        let timeout = call_timeout(f, &status);
        let auth_required = [&status.labels, &status.annotations].iter().any(|m| {
            m.get(ferry_proto::labels::AUTH).map(String::as_str)
                == Some(ferry_proto::labels::AUTH_REQUIRED)
        });
        let annotations = status
            .annotations
            .into_iter()
            .filter(|(k, _)| k.starts_with(FORWARDED_ANNOTATIONS))
            .collect();
        FunctionInfo {
            subject: call_subject(&queue, f),
            queue,
            annotations,
            timeout,
            auth_required,
        }
    }
}

/// How long one call of the function may run, in this order: the annotation or label
/// [`TIMEOUT`] (a duration; `0` = no limit of its own); else the larger of the watchdog's
/// `exec_timeout` and `write_timeout` in its environment plus [`WATCHDOG_MARGIN`] (either
/// `0` = no limit); else `None`. An unreadable value is ignored with a warning.
pub fn call_timeout(f: &FunctionRef, status: &FunctionStatus) -> Option<Duration> {
    let parse = |key: &str, value: &str| match ferry_proto::duration::parse(value) {
        Ok(d) => Some(d),
        Err(error) => {
            tracing::warn!(function = %f, key, value, %error, "ignoring an unreadable timeout");
            None
        }
    };
    let declared = status
        .annotations
        .get(TIMEOUT)
        .or_else(|| status.labels.get(TIMEOUT))
        .and_then(|v| parse(TIMEOUT, v));
    if declared.is_some() {
        return declared;
    }
    let watchdog: Vec<Duration> = ["exec_timeout", "write_timeout"]
        .iter()
        .filter_map(|k| status.env_vars.get(*k).and_then(|v| parse(k, v)))
        .collect();
    if watchdog.is_empty() {
        return None;
    }
    if watchdog.contains(&Duration::ZERO) {
        return Some(Duration::ZERO);
    }
    watchdog.into_iter().max().map(|d| d + WATCHDOG_MARGIN)
}

/// The cache of [`FunctionInfo`]; only functions that exist are remembered.
#[derive(Clone)]
pub struct Functions {
    cache: Cache<FunctionInfo>,
}

impl Functions {
    pub fn new(provider: ProviderClient, ttl: Duration) -> Self {
        let load = Arc::new(move |f: FunctionRef| {
            let provider = provider.clone();
            async move {
                let status = provider.function(&f).await?;
                Ok(status.map(|s| FunctionInfo::new(&f, s)))
            }
            .boxed()
        });
        Functions {
            cache: Cache::new(ttl, ttl.saturating_mul(MAX_STALE_TTLS), load),
        }
    }

    /// `function` (`name` or `name.namespace`, as in the URL), or why it cannot be used.
    pub async fn get(&self, function: &str) -> Result<Arc<Cached<FunctionInfo>>, InvokeError> {
        let old = match self.cache.get(function) {
            Lookup::Fresh(entry) | Lookup::Stale(entry) => return Ok(entry),
            Lookup::Expired(entry) => Some(entry),
            Lookup::Missing => None,
        };
        let loaded = self.cache.reload(function, old.as_ref()).await?;
        // The provider cannot be asked: what it said last is still the best answer.
        loaded.or_else(|reason| old.ok_or(InvokeError::Provider(reason)))
    }

    /// Forgets functions not called for `idle`.
    pub fn sweep(&self, idle: Duration) {
        self.cache.sweep(idle);
    }
}

#[cfg(test)]
mod tests {
    use ferry_proto::Name;

    use super::*;

    fn info(annotations: &[(&str, &str)]) -> FunctionInfo {
        let f = FunctionRef::parse("echo.dev", &Name::default_namespace()).unwrap();
        let status = FunctionStatus {
            name: "echo".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..FunctionStatus::default()
        };
        FunctionInfo::new(&f, status)
    }

    #[test]
    fn the_timeout_comes_from_the_annotation_then_the_watchdog_settings() {
        let f = FunctionRef::parse("echo", &Name::default_namespace()).unwrap();
        let status = |annotations: &[(&str, &str)], env: &[(&str, &str)]| FunctionStatus {
            name: "echo".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env_vars: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..FunctionStatus::default()
        };
        let s = Duration::from_secs;
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: &[(Pairs, Pairs, Option<Duration>)] = &[
            (&[], &[], None),
            (&[(TIMEOUT, "2h")], &[("exec_timeout", "5s")], Some(s(7200))),
            (&[(TIMEOUT, "0")], &[], Some(Duration::ZERO)),
            (
                &[],
                &[("exec_timeout", "300s"), ("write_timeout", "5m")],
                Some(s(302)),
            ),
            (&[], &[("write_timeout", "90")], Some(s(92))),
            (
                &[],
                &[("exec_timeout", "0"), ("write_timeout", "1m")],
                Some(Duration::ZERO),
            ),
            (
                &[(TIMEOUT, "soon")],
                &[("exec_timeout", "10s")],
                Some(s(12)),
            ),
        ];
        for (annotations, env, want) in cases {
            assert_eq!(
                call_timeout(&f, &status(annotations, env)),
                *want,
                "{annotations:?} {env:?}"
            );
        }
        let mut labelled = status(&[], &[("exec_timeout", "10s")]);
        labelled.labels.insert(TIMEOUT.into(), "1h".into());
        assert_eq!(call_timeout(&f, &labelled), Some(s(3600)));
    }

    #[test]
    fn auth_is_required_by_the_label_or_annotation() {
        assert!(!info(&[]).auth_required);
        assert!(info(&[("com.ferry.auth", "required")]).auth_required);
        assert!(!info(&[("com.ferry.auth", "Required")]).auth_required);
        let f = FunctionRef::parse("echo", &Name::default_namespace()).unwrap();
        let mut status = FunctionStatus::default();
        status
            .labels
            .insert("com.ferry.auth".into(), "required".into());
        assert!(FunctionInfo::new(&f, status).auth_required);
    }

    #[test]
    fn queue_comes_from_the_annotation_when_valid() {
        let i = info(&[]);
        assert_eq!(i.queue, "faas-request");
        assert_eq!(i.subject, "ferry.calls.faas-request.echo.dev");
        let i = info(&[("com.openfaas.queue", "slow"), ("topic", "orders")]);
        assert_eq!(i.subject, "ferry.calls.slow.echo.dev");
        assert_eq!(i.annotations.len(), 1);
        assert_eq!(info(&[("com.openfaas.queue", "a.b")]).queue, "faas-request");
    }
}
