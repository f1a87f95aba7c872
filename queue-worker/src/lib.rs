//! `queue-worker`: runs ferry's queued (async) function calls, retries them, dead-letters what
//! cannot succeed, delivers every result to its callback, and records each call's status.
//!
//! The gateway stores each `POST /async-function/...` as a [`QueueRequest`] JSON message in the
//! JetStream stream `ferry-calls`, on subject `ferry.calls.<queue>.<name>.<namespace>`, with the
//! call id in the `Ferry-Call-Id` NATS header, after creating the call's status record
//! (`queued`) in the key-value bucket `ferry-call-status`; the message carries that record's
//! revision (`Ferry-Status-Revision`). Every worker of a queue pulls from one shared durable
//! consumer, `ferry-workers-<queue>` (competing consumers), and for each call:
//!
//! 1. waits for a slot of its function if the function already runs
//!    `max_inflight_per_function` calls here (woken when one ends; the message's lease is
//!    renewed and its worker slot given back meanwhile);
//! 2. claims it: writes `running` with one more attempt, compare-and-set over the revision the
//!    message carries (one JetStream operation), or reads the record and decides: skip a
//!    `cancelled` call, acknowledge a duplicate or a call already settled, dead-letter a call
//!    that is too old (`expired`), out of attempts (`attempts_exhausted`) or delivered more
//!    than `max_deliveries` times without finishing (`max_deliveries`);
//! 3. invokes the function **straight at a ready replica** ([`invoke`], with `ferry-invoke`:
//!    the provider's endpoints, the least-in-flight choice and scaling from zero, as the gateway
//!    does it), with the original method, path, query, headers and body plus `X-Call-Id`, and
//!    the function's own timeout ([`timeouts`](#timeouts)), renewing the message's JetStream
//!    lease every `ack_wait / 3` meanwhile ([`lease`]). One attempt is one invocation;
//! 4. on a retryable failure (unreachable, no ready replica in time, a status in the retry
//!    codes, an error carrying `X-OpenFaaS-Internal`) with attempts left: records the attempt,
//!    sets the status back to `queued` with `nextAttemptAt`, and schedules the retry as a
//!    JetStream message schedule (`ferry.retry.<queue>.<name>.<namespace>.<call>`, NATS 2.12+)
//!    that puts the call back on its queue when it is due; the message is acknowledged, so a
//!    call waiting for a retry holds no place in the consumer's pending window ([`policy`]);
//! 5. a call that ran out of its timeout is dead-lettered as `timed_out` (state `timed_out`),
//!    unless the function retries timeouts (`com.openfaas.retry.on_timeout`);
//! 6. otherwise POSTs the result to the call's `X-Callback-Url`, if any ([`callback`]), records
//!    the final status and acknowledges the message last. A callback that fails is queued in
//!    the stream `ferry-callbacks` and retried by a second pull loop (consumer
//!    `ferry-callbacks-<queue>`) without holding the call; one that never succeeds
//!    dead-letters the call as `callback_failed`.
//!
//! A function's response is kept in memory for its callback (and its retries and dead letter)
//! when it is at most `max_buffered_result` and the worker's `result_memory` has room; a
//! larger one is streamed to the callback as it arrives, once: if that delivery fails the call
//! ends `callback_failed` with the result's status and headers but not its body.
//!
//! Dead letters go to the stream `ferry-dead-letters` (subject
//! `ferry.dead.<queue>.<name>.<namespace>`) before the call is acknowledged. A message that
//! is not a call is dead-lettered as `invalid_message` with its payload. Delivery is at least
//! once: a worker that dies mid-call leaves its messages unacknowledged and JetStream
//! redelivers them to another worker after `ack_wait`; the lost invocation counts as an
//! attempt (the function may have run it: it is recorded as lost, not as undone).
//!
//! # Call status
//!
//! `queued → running → (queued → running)* → succeeded | failed | timed_out | dead_lettered |
//! expired | callback_failed`, or `queued → cancelled` (set by the gateway). `succeeded` (status
//! < 400) and `failed` are written only once the callback was delivered (at once without a
//! callback URL); while a callback is being retried the call stays `running` with
//! `callback.state = retrying`. Every status write is conditional (`ferry_runtime::status`): a
//! cancel or redrive written meanwhile is never overwritten. When the bucket cannot be used a
//! call is not run: its message waits (`-NAK`) until the bucket is back.
//!
//! # Timeouts
//!
//! A call may run as long as its function allows: the annotation (or label)
//! `com.openfaas.timeout` (e.g. `2h`), else the larger of the function's watchdog settings
//! `exec_timeout` and `write_timeout` plus 2 s (so the watchdog's own answer comes first),
//! else `upstream_timeout`; never more than `max_call_duration`. The gateway's sync
//! `upstream_timeout` plays no part. `ack_wait` is a liveness lease, renewed all along.
//!
//! # Configuration
//!
//! Environment variables (see [`Config`]; `queue-worker --help` lists them):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `nats_url` | `nats://127.0.0.1:4222` | NATS server (2.12 or later: retries are message schedules), or a comma-separated list of the servers of a cluster; `user:password@` or `token@` in it authenticate (never logged) |
//! | `nats_replicas` | `1` | replicas of every stream and bucket (3 in a three-node cluster; an existing object is updated to it); `nats_stream_replicas` is its older name |
//! | `nats_duplicate_window` | `2m` | the calls stream's duplicate window, if the worker creates it |
//! | `nats_max_age` | `0` (forever) | the calls stream's message age limit, if the worker creates it |
//! | `call_status_ttl` | `24h` | how long a status record is kept after its last change, if the worker creates the bucket |
//! | `dead_letter_max_age` | `336h` (14 days) | how long a dead letter is kept (`0`: until deleted), if the worker creates the stream |
//! | `functions_provider_url` | `http://127.0.0.1:8081` | the provider API: replica endpoints, function settings, scaling from zero |
//! | `provider_timeout`, `endpoint_cache_ttl`, `endpoint_max_stale`, `function_cache_ttl` | `5s`, `1s`, `5s`, `5s` | provider look-ups and their caching, as in the gateway |
//! | `scale_from_zero`, `scale_from_zero_timeout` | `true`, `30s` | hold a call to a function without a ready replica until one is ready (scaling it from zero), at most this long; the wait is not part of the call's timeout |
//! | `basic_auth`, `secret_mount_path` | `false`, `/run/secrets` | send the gateway's basic-auth credentials (read from `basic-auth-user`/`basic-auth-password`, waited for up to 60 s) to the provider |
//! | `queue_name` | `faas-request` | queue served: consumers `ferry-workers-<queue>` and `ferry-callbacks-<queue>`, subjects `ferry.calls.<queue>.>` and `ferry.callbacks.<queue>.>` |
//! | `max_inflight` | `64` | calls this worker runs at once (and, separately, callback retries) |
//! | `max_inflight_per_function` | `max_inflight / 2` (at least 1) | calls of one function this worker runs at once; more wait (up to `max_inflight` of them, without their worker slot), beyond that they are handed back for 2 s |
//! | `ack_wait` | `30s` | JetStream lease of a call, renewed every third of it while the call runs (at least `1s`) |
//! | `max_ack_pending` | `10000` | unacknowledged messages (running or waiting for a function slot) each consumer allows across all its workers |
//! | `upstream_timeout` | `5m` | how long a call may run when its function declares no timeout |
//! | `max_call_duration` | `24h` | the longest any call may run |
//! | `max_deliveries` | `10` | deliveries of one message (each after a worker died or lost it) before it is dead-lettered as `max_deliveries` |
//! | `max_buffered_result` | `1MiB` | the largest result kept in memory (for callback retries and dead letters); larger ones stream to the callback once |
//! | `result_memory` | `8MiB` | memory all results kept in memory may take at once; past it results stream |
//! | `max_retry_attempts` | `10` | invocations per call, the first included (1 to 100; `1` = no retry); annotation `com.openfaas.retry.attempts` |
//! | `initial_retry_wait` | `1s` | delay before the first retry, doubling per retry; annotation `com.openfaas.retry.min_wait` |
//! | `max_retry_wait` | `60s` | longest computed retry delay (equal jitter: 50–100 % of the doubled delay, never below the initial); annotation `com.openfaas.retry.max_wait` |
//! | `retry_http_codes` | `408,429,500,502,503,504` | function statuses that are retried; annotation `com.openfaas.retry.codes` |
//! | `retry_timed_out` | `false` | retry a call that ran out of its timeout; annotation `com.openfaas.retry.on_timeout` |
//! | `max_event_age` | `0` (no limit) | oldest a call may be (since it was submitted) when it would be invoked; older → dead letter `expired`; annotation `com.openfaas.retry.max_age` |
//! | `callback_timeout` | `10s` | longest callback POST (for a streamed result: after the function's body ended) |
//! | `callback_max_attempts` | `8` | deliveries tried per callback, the first included (1 to 100); then `callback_failed` |
//! | `callback_initial_wait` | `1s` | delay before the first callback retry, doubling per retry |
//! | `callback_max_wait` | `60s` | longest callback retry delay (equal jitter) |
//! | `callback_deny` | empty | more destinations callbacks may not go to: host names, `*.domain` patterns, IP addresses, CIDRs (comma-separated), on top of the built-in link-local, cloud metadata, unspecified and multicast ones |
//! | `callback_allow` | empty | destinations allowed despite `callback_deny` or a built-in range (never a cloud metadata endpoint) |
//! | `callback_signing_key_file` | `<secret_mount_path>/callback-signing-key` | key(s) callbacks are signed with, the first line signing ([`signing`]); missing at the default path: unsigned callbacks, missing when set: an error |
//! | `shutdown_grace` | `30s` | on SIGTERM, how long running calls get to finish |
//! | `pull_expires` | `2s` | how long a pull request waits at the server |
//! | `port` | `8083` | `/healthz` and `/metrics` listen port |
//! | `bind` | `127.0.0.1`; `0.0.0.0` with `basic_auth=true` | their listen address (compose: `0.0.0.0`, for Prometheus) |
//! | `log_format`, `RUST_LOG` | `text`, `info` | logging |
//!
//! A `Retry-After` header (seconds or an HTTP date) on a 429 or 503 replaces the computed
//! delay: at least the initial wait, honoured above the maximum wait up to one hour. Invalid
//! `com.openfaas.retry.*` annotations fall back to the worker defaults with a warning naming
//! the annotation. Callbacks may be `http://` or `https://` (rustls with the ring provider,
//! system root certificates). Their destinations are held to `callback_allow` /
//! `callback_deny` ([`callback_client`]): every address a callback host resolves to is checked
//! before a connection is made, and a refused callback ends the call `callback_failed` at once.
//!
//! # Shutdown
//!
//! When `shutdown` resolves the worker stops pulling at once (messages a still-open pull
//! delivers are handed back with a NAK), gives running calls and callback deliveries
//! `shutdown_grace` to finish (status, callback and ack included), leaves those still running
//! unacknowledged for redelivery, and returns.
//!
//! # Layout
//!
//! - [`config`]: environment variables and defaults; [`policy`]: the retry policy;
//! - `consumer`: JetStream set-up and the two pull loops (flow control, stopping);
//! - `call`: one call message (fairness, invoke, outcome); `claim`: deciding from the status
//!   record and marking the call running; `retry`: scheduled retries; `settle`: how a call
//!   ends (dead letter, callback, final status);
//! - `result`: reading a result in bounded memory; `callback_retry`: the queued callbacks and
//!   their retry loop; [`callback`]: the POST; [`signing`]: its signature;
//!   [`callback_client`]: its HTTP client, held to the callback destination policy;
//! - `status`: changes to status records; `deadletter`: dead-letter publishing;
//! - `fairness`: the per-function cap and its waiting room; [`metrics`]: Prometheus metrics;
//! - [`invoke`]: the request to a replica; [`lease`]: in-progress acks while a call runs;
//! - `health`: `GET /healthz` and `GET /metrics`; [`error`]: the [`WorkerError`] enum.
//!
//! [`QueueRequest`]: ferry_proto::QueueRequest

mod call;
pub mod callback;
pub mod callback_client;
mod callback_retry;
mod claim;
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
mod result;
mod retry;
mod settle;
pub mod signing;
mod status;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::call::CallHandler;
use crate::callback_client::CallbackClient;
use crate::callback_retry::CallbackHandler;
use crate::consumer::{Consumer, Lane};
use crate::context::Context;

pub use config::Config;
pub use error::WorkerError;
pub use metrics::Metrics;

/// The name the worker's NATS connection carries.
pub const CLIENT_NAME: &str = "ferry-queue-worker";

/// How long the worker waits at start for the gateway to write the credentials.
const CREDENTIALS_WAIT: Duration = Duration::from_secs(60);

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
    config.validate()?;
    let config = Arc::new(config);
    ferry_runtime::tls::install();
    let http = CallbackClient::new(config.callback_guard.clone(), config.max_inflight)?;

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
        provider = %config.invoke.provider_url,
        max_inflight = config.max_inflight,
        "queue-worker starting"
    );

    let (invoker, signing_key) = secrets(&config, &metrics).await?;
    let client = ferry_runtime::jetstream::connect(&config.nats.url, CLIENT_NAME).await?;
    health.set_client(client.clone());
    let js = async_nats::jetstream::new(client.clone());
    let lanes = Lanes {
        config: config.clone(),
        js: js.clone(),
        health,
        tracker,
        cancel: cancel.clone(),
        abandon: CancellationToken::new(),
    };
    if let Some(bucket) = consumer::prepare(&js, &config, &cancel).await {
        let ctx = Arc::new(Context {
            config: config.clone(),
            http,
            signing_key,
            invoker,
            results: result::Budget::new(config.result_memory, config.max_buffered_result),
            client: client.clone(),
            js,
            status: status::StatusStore::new(bucket),
            metrics,
            fairness: fairness::Fairness::new(
                config.max_inflight_per_function,
                config.max_inflight,
            ),
        });
        lanes.run(ctx).await;
    }
    lanes.drain(&client).await;

    stop_serving.cancel();
    let served = server.await.map_err(std::io::Error::other)?;
    tracing::info!("queue-worker stopped");
    served.map_err(WorkerError::Serve)
}

/// The provider client (with the provider's credentials when basic auth is on, waiting for
/// the gateway to write them) and the callback signing key, read after them: in compose the
/// gateway writes the key before the credentials.
async fn secrets(
    config: &Config,
    metrics: &Metrics,
) -> Result<(ferry_invoke::Invoker, Option<signing::SigningKey>), WorkerError> {
    let credentials = if config.auth.enabled {
        let dir = &config.auth.secret_mount_path;
        Some(ferry_runtime::auth::wait_and_load(dir, CREDENTIALS_WAIT).await?)
    } else {
        None
    };
    let signing_key = signing::load(&config.callback_signing_key_file)?;
    let invoker = ferry_invoke::Invoker::new(
        &config.invoke,
        credentials.as_ref(),
        metrics.registry(),
        "queue_worker",
    );
    Ok((invoker, signing_key))
}

/// What the calls and the callbacks consumers share, and the drain at shutdown.
struct Lanes {
    config: Arc<Config>,
    js: async_nats::jetstream::Context,
    health: Arc<health::Health>,
    /// Message tasks.
    tracker: TaskTracker,
    /// Stop pulling.
    cancel: CancellationToken,
    /// Give up on calls still running (the shutdown grace is over).
    abandon: CancellationToken,
}

impl Lanes {
    /// Runs both consumers until `cancel` fires.
    async fn run(&self, ctx: Arc<Context>) {
        let calls = self.consumer(Lane::Calls, CallHandler(ctx.clone()));
        let callbacks = self.consumer(Lane::Callbacks, CallbackHandler(ctx));
        tokio::join!(calls.run(), callbacks.run());
    }

    fn consumer<H>(&self, lane: Lane, handler: H) -> Consumer<H> {
        Consumer {
            lane,
            handler: Arc::new(handler),
            config: self.config.clone(),
            js: self.js.clone(),
            health: self.health.clone(),
            tracker: self.tracker.clone(),
            cancel: self.cancel.clone(),
            abandon: self.abandon.clone(),
        }
    }

    /// Stopping: no more pulls; running calls finish within the grace, or are abandoned
    /// (left unacked, to be redelivered); then the NATS connection is flushed and closed.
    async fn drain(&self, client: &async_nats::Client) {
        let (health, tracker, config) = (&self.health, &self.tracker, &self.config);
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
            self.abandon.cancel();
            let _ = tokio::time::timeout(ABANDON_WAIT, tracker.wait()).await;
        }
        // NAKs (retries included) and progress acks are fire-and-forget: flush them out and
        // close the connection.
        if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
            tracing::debug!(%error, "flushing the NATS connection");
        }
        let _ = client.drain().await;
    }
}
