//! `queue-worker`: runs ferry's queued (async) function calls, retries them, dead-letters what
//! cannot succeed, delivers every result to its callback, and records each call's status.
//!
//! The gateway stores each `POST /async-function/...` as a [`QueueRequest`] JSON message in the
//! JetStream stream `ferry-calls`, on subject `ferry.calls.<queue>.<name>.<namespace>`, with the
//! call id in the `Ferry-Call-Id` NATS header, and creates the call's status record (`queued`)
//! in the key-value bucket `ferry-call-status`. Every worker of a queue pulls from one shared
//! durable consumer, `ferry-workers-<queue>` (competing consumers), and for each call:
//!
//! 1. skips it (acknowledged, nothing else) if its status is `cancelled`, or hands it back for
//!    a moment if its function already runs `max_inflight_per_function` calls here;
//! 2. dead-letters it as `expired` if it is older than its maximum age, or as
//!    `attempts_exhausted` if it has no attempts left;
//! 3. otherwise writes `running` with one more attempt and invokes the function through the
//!    gateway's sync route, `<gateway_url>/function/<Function><Path>?<QueryString>`, with the
//!    original method, headers and body plus `X-Call-Id` ([`invoke`]), renewing the message's
//!    JetStream lease every `ack_wait / 3` meanwhile ([`lease`]);
//! 4. on a retryable failure (connection error, timeout, a status in the retry codes, any
//!    error carrying `X-OpenFaaS-Internal`) with attempts left: records the attempt, sets the
//!    status back to `queued` with `nextAttemptAt`, and NAKs the message with the backoff
//!    delay (or the answer's `Retry-After`), so JetStream redelivers it then ([`policy`]);
//! 5. otherwise POSTs the result to the call's `X-Callback-Url`, if any ([`callback`]), and
//!    acknowledges the message (a double ack, confirmed by the server) last. A callback that
//!    fails is queued in the stream `ferry-callbacks` and retried by a second pull loop
//!    (consumer `ferry-callbacks-<queue>`) without holding the call; one that never succeeds
//!    dead-letters the call as `callback_failed`.
//!
//! Dead letters go to the stream `ferry-dead-letters` (subject
//! `ferry.dead.<queue>.<name>.<namespace>`) before the call is acknowledged. Delivery is at
//! least once: a worker that dies mid-call leaves its messages unacknowledged and JetStream
//! redelivers them to another worker after `ack_wait`; the lost invocation counts as an
//! attempt. A message that is not a valid call is logged and terminated.
//!
//! # Call status
//!
//! `queued → running → (queued → running)* → succeeded | failed | dead_lettered | expired |
//! callback_failed`, or `queued → cancelled` (set by the gateway). `succeeded` (status < 400) and
//! `failed` are written only once the callback was delivered (at once without a callback URL);
//! while a callback is being retried the call stays `running` with `callback.state =
//! retrying`. Status writes are compare-and-set on the record's revision; when the bucket cannot
//! be used the call still runs, counting attempts by JetStream deliveries.
//!
//! # Configuration
//!
//! Environment variables (see [`Config`]; `queue-worker --help` lists them):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `nats_url` | `nats://127.0.0.1:4222` | NATS server |
//! | `nats_stream_replicas` | `1` | replicas of the streams and bucket, if the worker creates them |
//! | `nats_duplicate_window` | `2m` | the calls stream's duplicate window, if the worker creates it |
//! | `nats_max_age` | `0` (forever) | the calls stream's message age limit, if the worker creates it |
//! | `call_status_ttl` | `24h` | how long a status record is kept after its last change, if the worker creates the bucket |
//! | `dead_letter_max_age` | `336h` (14 days) | how long a dead letter is kept (`0`: until deleted), if the worker creates the stream |
//! | `gateway_url` | `http://127.0.0.1:8080` | where functions are invoked (`/function/...`) |
//! | `queue_name` | `faas-request` | queue served: consumers `ferry-workers-<queue>` and `ferry-callbacks-<queue>`, subjects `ferry.calls.<queue>.>` and `ferry.callbacks.<queue>.>` |
//! | `max_inflight` | `64` | calls this worker runs at once (and, separately, callback retries) |
//! | `max_inflight_per_function` | `max_inflight / 2` (at least 1) | calls of one function this worker runs at once; more wait a moment (`-NAK` 250 ms), uncounted |
//! | `ack_wait` | `30s` | JetStream lease of a call, renewed every third of it while the call runs (at least `1s`) |
//! | `max_ack_pending` | `10000` | unacknowledged messages (running, or waiting for a retry) each consumer allows across all its workers |
//! | `upstream_timeout` | `5m` | longest function call (status 504 beyond; retryable) |
//! | `max_retry_attempts` | `10` | invocations per call, the first included (1 to 100; `1` = no retry); annotation `com.openfaas.retry.attempts` |
//! | `initial_retry_wait` | `1s` | delay before the first retry, doubling per retry; annotation `com.openfaas.retry.min_wait` |
//! | `max_retry_wait` | `60s` | longest computed retry delay (equal jitter: 50–100 % of the doubled delay, never below the initial); annotation `com.openfaas.retry.max_wait` |
//! | `retry_http_codes` | `408,429,500,502,503,504` | function statuses that are retried; annotation `com.openfaas.retry.codes` |
//! | `max_event_age` | `0` (no limit) | oldest a call may be (since the gateway stored it) when it would be invoked; older → dead letter `expired`; annotation `com.openfaas.retry.max_age` |
//! | `callback_timeout` | `10s` | longest callback POST |
//! | `callback_max_attempts` | `8` | deliveries tried per callback, the first included (1 to 100); then `callback_failed` |
//! | `callback_initial_wait` | `1s` | delay before the first callback retry, doubling per retry |
//! | `callback_max_wait` | `60s` | longest callback retry delay (equal jitter) |
//! | `shutdown_grace` | `30s` | on SIGTERM, how long running calls get to finish |
//! | `pull_expires` | `2s` | how long a pull request waits at the server |
//! | `port` | `8083` | `/healthz` and `/metrics` listen port |
//! | `log_format`, `RUST_LOG` | `text`, `info` | logging |
//!
//! A `Retry-After` header (seconds or an HTTP date) on a 429 or 503 replaces the computed
//! delay: at least the initial wait, honoured above the maximum wait up to one hour. Invalid
//! `com.openfaas.retry.*` annotations fall back to the worker defaults with a warning naming
//! the annotation. Callbacks and `gateway_url` may be `http://` or `https://` (rustls with the
//! ring provider, system root certificates).
//!
//! # Shutdown
//!
//! When `shutdown` resolves the worker stops pulling at once (messages a still-open pull
//! delivers are handed back with a NAK), gives running calls and callback deliveries
//! `shutdown_grace` to finish (status, callback and ack included), leaves those still running
//! unacknowledged for redelivery, and returns. A retry is a NAK with a delay: JetStream holds
//! the message meanwhile, whatever happens to the worker.
//!
//! # Layout
//!
//! - [`config`]: environment variables and defaults; [`policy`]: the retry policy;
//! - `consumer`: JetStream set-up and the two pull loops (flow control, stopping);
//! - `call`: one call message (status, fairness, invoke, retry decision); `settle`: how a call
//!   ends (dead letter, callback, final status);
//! - `callback_retry`: the queued callbacks and their retry loop; [`callback`]: the POST;
//! - `status`: the status records (compare-and-set); `deadletter`: dead-letter publishing;
//! - `fairness`: the per-function cap; [`metrics`]: Prometheus metrics;
//! - [`invoke`]: the request to the function; [`lease`]: in-progress acks while a call runs;
//! - `health`: `GET /healthz` and `GET /metrics`; [`error`]: the [`WorkerError`] enum.
//!
//! [`QueueRequest`]: ferry_proto::QueueRequest

mod call;
pub mod callback;
mod callback_retry;
pub mod config;
mod consumer;
mod context;
mod deadletter;
pub mod error;
mod fairness;
mod health;
pub mod invoke;
pub mod lease;
pub mod metrics;
pub mod policy;
mod settle;
mod status;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::call::CallHandler;
use crate::callback_retry::CallbackHandler;
use crate::consumer::{Consumer, Lane};
use crate::context::Context;

pub use config::Config;
pub use error::WorkerError;
pub use metrics::Metrics;

/// The name the worker's NATS connection carries.
pub const CLIENT_NAME: &str = "ferry-queue-worker";

/// How long calls get to notice that the grace is over and return.
const ABANDON_WAIT: Duration = Duration::from_secs(5);

/// Runs the worker until `shutdown` resolves: serves `/healthz` and `/metrics` on `listener`,
/// connects to NATS (waiting for it if it is not up), and runs queued calls and callback
/// retries; then drains as described in the crate docs.
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
    let health = Arc::new(health::Health::new(&config.queue_name, tracker.clone()));
    let metrics = Arc::new(Metrics::new());
    let address = listener.local_addr()?;
    let stop_serving = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, health::router(health.clone(), metrics.clone()))
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
    let js = async_nats::jetstream::new(client.clone());
    let abandon = CancellationToken::new();
    if let Some(bucket) = consumer::prepare(&js, &config, &cancel).await {
        let ctx = Arc::new(Context {
            config: config.clone(),
            http,
            client: client.clone(),
            js: js.clone(),
            status: status::StatusStore::new(bucket),
            metrics,
            fairness: fairness::Fairness::new(config.max_inflight_per_function),
        });
        let calls = Consumer {
            lane: Lane::Calls,
            handler: Arc::new(CallHandler(ctx.clone())),
            config: config.clone(),
            js: js.clone(),
            health: health.clone(),
            tracker: tracker.clone(),
            cancel: cancel.clone(),
            abandon: abandon.clone(),
        };
        let callbacks = Consumer {
            lane: Lane::Callbacks,
            handler: Arc::new(CallbackHandler(ctx)),
            config: config.clone(),
            js,
            health: health.clone(),
            tracker: tracker.clone(),
            cancel: cancel.clone(),
            abandon: abandon.clone(),
        };
        tokio::join!(calls.run(), callbacks.run());
    }

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
    // NAKs (retries included) and progress acks are fire-and-forget: flush them out and close
    // the connection.
    if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
        tracing::debug!(%error, "flushing the NATS connection");
    }
    let _ = client.drain().await;

    stop_serving.cancel();
    let served = server.await.map_err(std::io::Error::other)?;
    tracing::info!("queue-worker stopped");
    served.map_err(WorkerError::Serve)
}
