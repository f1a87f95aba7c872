//! Readiness of replicas: a replica is ready when its watchdog answers its readiness probe,
//! `GET /_/health` unless the function's annotations name another path
//! ([`ferry_proto::probe`]), and its initial delay (if any) has passed since it was created.
//!
//! 200 means ready; 429 means ready but at its `max_inflight` limit (the replica is up, it is
//! just busy), which still counts as available. Anything else, a timeout or a refused
//! connection means not ready. Results are cached briefly so a burst of status calls does
//! not turn into a burst of probes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::docker::Replica;

/// Probes and remembers replica readiness.
#[derive(Debug)]
pub struct Prober {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    ttl: Duration,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Prober {
    /// A prober with a per-probe `timeout`, reusing results for `ttl`.
    pub fn new(timeout: Duration, ttl: Duration) -> Prober {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Prober {
            client,
            timeout,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether each replica is ready, in order (not running or no address: not ready).
    pub async fn ready_all(&self, replicas: &[Replica]) -> Vec<bool> {
        futures_util::future::join_all(replicas.iter().map(|r| self.ready(r))).await
    }

    /// Whether `replica` is ready, from the cache when fresh.
    pub async fn ready(&self, replica: &Replica) -> bool {
        let Some(address) = replica.address.as_deref().filter(|_| replica.running) else {
            return false;
        };
        if delayed(replica) {
            return false;
        }
        if let Some((ready, at)) = self
            .cache
            .lock()
            .expect("probe cache poisoned")
            .get(&replica.id)
        {
            if at.elapsed() < self.ttl {
                return *ready;
            }
        }
        let ready = self.probe(address, &replica.probe.path).await;
        self.cache
            .lock()
            .expect("probe cache poisoned")
            .insert(replica.id.clone(), (ready, Instant::now()));
        ready
    }

    /// Probes `replica` now, bypassing the cache, and caches the result.
    pub async fn probe_now(&self, replica: &Replica) -> bool {
        let Some(address) = replica.address.as_deref() else {
            return false;
        };
        let ready = !delayed(replica) && self.probe(address, &replica.probe.path).await;
        self.cache
            .lock()
            .expect("probe cache poisoned")
            .insert(replica.id.clone(), (ready, Instant::now()));
        ready
    }

    /// Forgets a replica that went away.
    pub fn forget(&self, id: &str) {
        self.cache.lock().expect("probe cache poisoned").remove(id);
    }

    async fn probe(&self, address: &str, path: &str) -> bool {
        let Ok(uri) = format!("http://{address}{path}").parse() else {
            return false;
        };
        match tokio::time::timeout(self.timeout, self.client.get(uri)).await {
            Ok(Ok(resp)) => {
                matches!(
                    resp.status(),
                    StatusCode::OK | StatusCode::TOO_MANY_REQUESTS
                )
            }
            _ => false,
        }
    }
}

/// Whether `replica` is still within its probe's initial delay (counted from its creation).
pub fn delayed(replica: &Replica) -> bool {
    let delay = replica.probe.initial_delay();
    if delay.is_zero() {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    now < replica.created as f64 + delay.as_secs_f64()
}
