//! `queue-worker`: runs ferry's queued (async) function calls.
//!
//! The gateway stores each `POST /async-function/...` as a [`QueueRequest`] JSON message in the
//! JetStream stream `ferry-calls`, on subject `ferry.calls.<queue>.<name>.<namespace>`, with the
//! call id in the `Ferry-Call-Id` NATS header. Every worker of a queue pulls from one shared
//! durable consumer, `ferry-workers-<queue>` (competing consumers), and for each call:
//!
//! 1. invokes the function through the gateway's sync route,
//!    `<gateway_url>/function/<Function><Path>?<QueryString>`, with the original method,
//!    headers and body plus `X-Call-Id` ([`invoke`]);
//! 2. renews the message's JetStream lease every `ack_wait / 3` while the call runs, so a call
//!    longer than `ack_wait` is not redelivered ([`lease`]);
//! 3. POSTs the result to the call's `X-Callback-Url`, if any, with `X-Call-Id`,
//!    `X-Function-Name`, `X-Function-Status` and `X-Duration-Seconds` ([`callback`]);
//! 4. acknowledges the message (a double ack, confirmed by the server) only then.
//!
//! Delivery is at least once: a worker that dies mid-call leaves its messages unacknowledged
//! and JetStream redelivers them to another worker after `ack_wait`. A message that is not a
//! valid call is logged and terminated. Failed calls and failed callbacks are reported and
//! acknowledged; retries and dead-lettering come later.
//!
//! # Configuration
//!
//! Environment variables (see [`Config`]; `queue-worker --help` lists them):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `nats_url` | `nats://127.0.0.1:4222` | NATS server |
//! | `nats_stream_replicas` | `1` | replicas of the calls stream, if the worker creates it |
//! | `nats_duplicate_window` | `2m` | the calls stream's duplicate window, if the worker creates it |
//! | `nats_max_age` | `0` (forever) | the calls stream's message age limit, if the worker creates it |
//! | `gateway_url` | `http://127.0.0.1:8080` | where functions are invoked (`/function/...`) |
//! | `queue_name` | `faas-request` | queue served: consumer `ferry-workers-<queue>`, subjects `ferry.calls.<queue>.>` |
//! | `max_inflight` | `64` | calls this worker runs at once |
//! | `ack_wait` | `30s` | JetStream lease of a call, renewed every third of it while the call runs (at least `1s`) |
//! | `max_ack_pending` | `10000` | unacknowledged calls the shared consumer allows across all its workers |
//! | `upstream_timeout` | `5m` | longest function call (status 504 beyond) |
//! | `callback_timeout` | `10s` | longest callback POST |
//! | `shutdown_grace` | `30s` | on SIGTERM, how long running calls get to finish |
//! | `pull_expires` | `2s` | how long a pull request waits at the server |
//! | `port` | `8083` | `/healthz` listen port |
//! | `log_format`, `RUST_LOG` | `text`, `info` | logging |
//!
//! Callbacks and `gateway_url` may be `http://` or `https://` (rustls with the ring provider,
//! system root certificates).
//!
//! # Shutdown
//!
//! When `shutdown` resolves the worker stops pulling at once (messages a still-open pull
//! delivers are handed back with a NAK), gives running calls `shutdown_grace` to finish
//! (callback and ack included), leaves those still running unacknowledged for redelivery, and
//! returns.
//!
//! # Layout
//!
//! - [`config`]: environment variables and defaults;
//! - `consumer`: JetStream set-up and the pull loop (flow control, stopping);
//! - `call`: one message from receipt to ack (parse, invoke, callback, ack, log span);
//! - [`invoke`]: the request to the function (URL, headers) and its answer;
//! - [`callback`]: the result POST and its headers;
//! - [`lease`]: in-progress acks while a call runs;
//! - `health`: `GET /healthz`;
//! - [`error`]: the [`WorkerError`] enum.
//!
//! [`QueueRequest`]: ferry_proto::QueueRequest

mod call;
pub mod callback;
pub mod config;
mod consumer;
pub mod error;
mod health;
pub mod invoke;
pub mod lease;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::WorkerError;

/// The name the worker's NATS connection carries.
pub const CLIENT_NAME: &str = "ferry-queue-worker";

/// How long calls get to notice that the grace is over and return.
const ABANDON_WAIT: Duration = Duration::from_secs(5);

/// Runs the worker until `shutdown` resolves: serves `/healthz` on `listener`, connects to NATS
/// (waiting for it if it is not up), and runs queued calls; then drains as described in the
/// crate docs.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    config.validate().map_err(WorkerError::Config)?;
    let config = Arc::new(config);
    ferry_runtime::tls::install();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferry-queue-worker/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(config.max_inflight)
        .tcp_nodelay(true)
        .build()
        .map_err(WorkerError::HttpClient)?;

    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            shutdown.await;
            cancel.cancel();
        }
    });

    let tracker = TaskTracker::new();
    let consumer = ferry_proto::jetstream::consumer_name(&config.queue_name);
    let health = Arc::new(health::Health::new(
        &config.queue_name,
        &consumer,
        tracker.clone(),
    ));
    let address = listener.local_addr()?;
    let stop_serving = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, health::router(health.clone()))
            .with_graceful_shutdown(stop_serving.clone().cancelled_owned())
            .into_future(),
    );
    tracing::info!(
        %address,
        queue = %config.queue_name,
        gateway = %config.gateway_url,
        max_inflight = config.max_inflight,
        "queue-worker starting"
    );

    let client = ferry_runtime::jetstream::connect(&config.nats.url, CLIENT_NAME).await?;
    health.set_client(client.clone());
    let abandon = CancellationToken::new();
    consumer::Consumer {
        config: config.clone(),
        js: async_nats::jetstream::new(client.clone()),
        health: health.clone(),
        http,
        tracker: tracker.clone(),
        cancel: cancel.clone(),
        abandon: abandon.clone(),
    }
    .run()
    .await;

    // Stopping: no more pulls; let running calls finish within the grace.
    health.set_stopping();
    tracker.close();
    if !tracker.is_empty() {
        tracing::info!(
            inflight = tracker.len(),
            grace = ?config.shutdown_grace,
            "stopping: waiting for running calls"
        );
    }
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            inflight = tracker.len(),
            "shutdown grace is over; unfinished calls will be redelivered"
        );
        abandon.cancel();
        let _ = tokio::time::timeout(ABANDON_WAIT, tracker.wait()).await;
    }
    // NAKs and progress acks are fire-and-forget: flush them out and close the connection.
    if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
        tracing::debug!(%error, "flushing the NATS connection");
    }
    let _ = client.drain().await;

    stop_serving.cancel();
    let served = server.await.map_err(std::io::Error::other)?;
    tracing::info!("queue-worker stopped");
    served.map_err(WorkerError::Serve)
}
