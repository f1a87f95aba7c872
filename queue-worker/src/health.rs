//! The worker's HTTP routes.
//!
//! - `GET /healthz`: 200 when the worker is connected to NATS and both its consumers (calls
//!   and callback retries) exist, 503 otherwise (starting, NATS down, consumer lost,
//!   stopping). The JSON body says which.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]); the pending calls of every queue
//!   are read from JetStream first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_nats::connection::State;
use axum::Router;
use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use tokio_util::task::TaskTracker;

use crate::consumer::Lane;
use crate::metrics::Metrics;

/// What `/healthz` reports on; shared with the consumer loop.
#[derive(Debug)]
pub(crate) struct Health {
    queue: String,
    consumer: String,
    callback_consumer: String,
    nats: OnceLock<async_nats::Client>,
    consumer_ready: AtomicBool,
    callback_consumer_ready: AtomicBool,
    stopping: AtomicBool,
    /// Calls in flight.
    calls: TaskTracker,
}

impl Health {
    pub(crate) fn new(queue: &str, calls: TaskTracker) -> Health {
        Health {
            queue: queue.to_string(),
            consumer: Lane::Calls.consumer(queue),
            callback_consumer: Lane::Callbacks.consumer(queue),
            nats: OnceLock::new(),
            consumer_ready: AtomicBool::new(false),
            callback_consumer_ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            calls,
        }
    }

    pub(crate) fn set_client(&self, client: async_nats::Client) {
        let _ = self.nats.set(client);
    }

    pub(crate) fn set_consumer_ready(&self, lane: Lane, ready: bool) {
        let flag = match lane {
            Lane::Calls => &self.consumer_ready,
            Lane::Callbacks => &self.callback_consumer_ready,
        };
        flag.store(ready, Ordering::Relaxed);
    }

    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn report(&self) -> (StatusCode, serde_json::Value) {
        let nats = match self.nats.get().map(|c| c.connection_state()) {
            Some(State::Connected) => "connected",
            Some(State::Pending) => "connecting",
            Some(State::Disconnected) => "disconnected",
            None => "starting",
        };
        let consumer_ready = self.consumer_ready.load(Ordering::Relaxed);
        let callback_consumer_ready = self.callback_consumer_ready.load(Ordering::Relaxed);
        let stopping = self.stopping.load(Ordering::Relaxed);
        let ok = nats == "connected" && consumer_ready && callback_consumer_ready && !stopping;
        let status = match (ok, stopping) {
            (true, _) => "ok",
            (false, true) => "stopping",
            (false, false) => "unavailable",
        };
        let body = json!({
            "status": status,
            "nats": nats,
            "queue": self.queue,
            "consumer": self.consumer,
            "consumer_ready": consumer_ready,
            "callback_consumer": self.callback_consumer,
            "callback_consumer_ready": callback_consumer_ready,
            "inflight": self.calls.len(),
        });
        let code = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, body)
    }
}

/// The worker's HTTP routes.
pub(crate) fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(health.clone())
        .route("/metrics", get(render).with_state((health, metrics)))
}

async fn healthz(Extract(health): Extract<Arc<Health>>) -> impl IntoResponse {
    let (code, body) = health.report();
    (code, Json(body))
}

async fn render(
    Extract((health, metrics)): Extract<(Arc<Health>, Arc<Metrics>)>,
) -> impl IntoResponse {
    let client = health.nats.get();
    if let Some(client) = client.filter(|c| c.connection_state() == State::Connected) {
        metrics.refresh_pending(client).await;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_connected_with_a_consumer() {
        let h = Health::new("faas-request", TaskTracker::new());
        let (code, body) = h.report();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["nats"], "starting");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["consumer"], "ferry-workers-faas-request");
        assert_eq!(body["callback_consumer"], "ferry-callbacks-faas-request");
        h.set_consumer_ready(Lane::Calls, true);
        h.set_consumer_ready(Lane::Callbacks, true);
        h.set_stopping();
        let (code, body) = h.report();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "stopping");
    }
}
