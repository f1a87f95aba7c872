//! What the async path needs to know about a function, cached briefly: that it exists, the
//! queue its calls go to, and the annotations the queue-worker acts on.
//!
//! Kept for `function_cache_ttl`, then refreshed in the background while still used, up to
//! [`MAX_STALE_TTLS`] TTLs old; an older entry is fetched again before the submission (see
//! [`crate::cache`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::jetstream::{DEFAULT_QUEUE, call_subject, valid_queue_name};
use ferry_proto::{FunctionRef, FunctionStatus, Name};
use futures_util::FutureExt as _;

use crate::cache::{Cache, Cached, LoadError, Lookup};
use crate::error::GatewayError;
use crate::provider::ProviderClient;

/// Annotations with this prefix travel with each queued call (`com.openfaas.queue`,
/// `com.openfaas.retry.*`, ...), so the worker needs no provider look-up of its own.
const FORWARDED_ANNOTATIONS: &str = "com.openfaas.";

/// How many TTLs old an entry may be and still be used while it is refreshed.
const MAX_STALE_TTLS: u32 = 3;

/// One function, as the async path sees it.
#[derive(Debug)]
pub(crate) struct FunctionInfo {
    /// The queue its calls go to.
    pub(crate) queue: String,
    /// The JetStream subject of its calls on that queue.
    pub(crate) subject: String,
    /// Its `com.openfaas.*` annotations.
    pub(crate) annotations: BTreeMap<String, String>,
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
        let annotations = status
            .annotations
            .into_iter()
            .filter(|(k, _)| k.starts_with(FORWARDED_ANNOTATIONS))
            .collect();
        FunctionInfo {
            subject: call_subject(&queue, f),
            queue,
            annotations,
        }
    }
}

/// The cache of [`FunctionInfo`]; only functions that exist are remembered.
#[derive(Clone)]
pub(crate) struct Functions {
    cache: Cache<FunctionInfo>,
}

impl Functions {
    pub(crate) fn new(provider: ProviderClient, ttl: Duration) -> Self {
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
    pub(crate) async fn get(
        &self,
        function: &str,
    ) -> Result<Arc<Cached<FunctionInfo>>, GatewayError> {
        let old = match self.cache.get(function) {
            Lookup::Fresh(entry) | Lookup::Stale(entry) => return Ok(entry),
            Lookup::Expired(entry) => Some(entry),
            Lookup::Missing => None,
        };
        let f = match &old {
            Some(old) => old.function().clone(),
            None => FunctionRef::parse(function, &Name::default_namespace())
                .map_err(|e| GatewayError::invalid_name(function, e))?,
        };
        match self.cache.load(function, f).await {
            Ok(entry) => Ok(entry),
            Err(LoadError::NotFound) => Err(GatewayError::FunctionNotFound(function.to_string())),
            // The provider cannot be asked: what it said last is still the best answer.
            Err(LoadError::Failed(reason)) => old.ok_or(GatewayError::Provider(reason)),
        }
    }

    /// Forgets functions not called for `idle`.
    pub(crate) fn sweep(&self, idle: Duration) {
        self.cache.sweep(idle);
    }
}

#[cfg(test)]
mod tests {
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
