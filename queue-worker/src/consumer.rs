//! The pull loops: JetStream set-up, flow control, one task per message, stopping.
//!
//! A worker runs two loops of the same kind, one per [`Lane`]: the queue's calls (stream
//! `ferry-calls`, consumer `ferry-workers-<queue>`) and the queue's callbacks waiting for a
//! retry (stream `ferry-callbacks`, consumer `ferry-callbacks-<queue>`). Each has its own
//! `max_inflight` slots and hands every message to its [`Handler`].
//!
//! **Set-up.** Before either loop starts, the dead-letter stream and the call-status bucket are
//! created if missing ([`prepare`]). Then each loop creates its stream if missing and its
//! durable pull consumer, or updates it (so a changed `ack_wait` or `max_ack_pending` applies
//! when a worker starts; every worker of a queue shares the consumers, and the last to start
//! sets them). The server does not limit deliveries (`max_deliver` unlimited): a message that
//! reached a server-side limit would stay in the work queue, never delivered and never
//! removed. The worker bounds them itself: a call delivered more than `max_deliveries` times
//! is dead-lettered instead of run again (see `call`). Retries do not count: a retry is a new
//! message. Every step is retried with backoff until it works: a worker started before NATS
//! waits for it, and a consumer deleted under a running worker is recreated.
//!
//! **Flow control.** A semaphore holds `max_inflight` slots. The loop waits for at least one
//! free slot, takes *all* free slots, and asks the server for at most that many messages
//! (a pull request waiting up to `pull_expires`). Each message that arrives takes one slot into
//! its own task, which gives the slot back when the call is acknowledged (or while it waits for
//! its function's cap, see `fairness`); slots the pull did not use go back when it ends. So the worker never holds a message it cannot start at once: no
//! message waits in a client-side buffer while its `ack_wait` runs out, and what this worker
//! cannot take stays at the server for the other workers.
//!
//! **Stopping.** When `cancel` fires the loop issues no new pull. A pull still open at the
//! server may yet deliver messages until it expires; those are handed straight back (`-NAK`)
//! so another worker gets them at once, instead of after `ack_wait`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message, kv};
use ferry_proto::jetstream::{
    CALL_ID_HEADER, CALLBACK_STREAM, CALLBACK_SUBJECT_PREFIX, CALLS_STREAM, callback_consumer_name,
    consumer_name, queue_filter,
};
use ferry_runtime::backoff::Doubling;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::JetStreamError;
use crate::fairness::WorkerSlot;
use crate::health::Health;
use crate::{Config, WorkerError, lease};

/// What a loop does with each message it receives.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles `message` to its end, renewing its lease every `renew_every`, holding `slot`
    /// (one of the worker's `max_inflight`) until then; returns without acknowledging when
    /// `abandon` fires.
    fn handle(
        self: Arc<Self>,
        message: Message,
        renew_every: Duration,
        abandon: CancellationToken,
        slot: WorkerSlot,
    ) -> impl Future<Output = ()> + Send;
}

/// Which of the queue's two consumers a loop serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Queued calls.
    Calls,
    /// Callbacks waiting for a retry.
    Callbacks,
}

impl Lane {
    /// The lane's stream.
    pub(crate) fn stream(self) -> &'static str {
        match self {
            Lane::Calls => CALLS_STREAM,
            Lane::Callbacks => CALLBACK_STREAM,
        }
    }

    /// The lane's durable consumer for `queue`.
    pub(crate) fn consumer(self, queue: &str) -> String {
        match self {
            Lane::Calls => consumer_name(queue),
            Lane::Callbacks => callback_consumer_name(queue),
        }
    }
}

/// First and longest wait between failed set-up or pull attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// Creates the dead-letter stream and the call-status bucket if missing, retrying until it
/// works; `None` when `cancel` fires first.
pub(crate) async fn prepare(
    js: &jetstream::Context,
    config: &Config,
    cancel: &CancellationToken,
) -> Option<kv::Store> {
    let mut backoff = backoff();
    loop {
        let ready = async {
            ferry_runtime::jetstream::ensure_dead_letter_stream(js, &config.nats).await?;
            let store = ferry_runtime::jetstream::ensure_status_bucket(js, &config.nats).await?;
            Ok::<_, JetStreamError>(store)
        };
        match ready.await {
            Ok(store) => return Some(store),
            Err(error) => tracing::warn!(%error, "JetStream not ready; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(next(&mut backoff)) => {}
        }
    }
}

/// The pieces a loop works with.
pub(crate) struct Consumer<H> {
    pub(crate) lane: Lane,
    pub(crate) handler: Arc<H>,
    pub(crate) config: Arc<Config>,
    pub(crate) js: jetstream::Context,
    pub(crate) health: Arc<Health>,
    /// Message tasks (and the drain of a last open pull).
    pub(crate) tracker: TaskTracker,
    /// Stop pulling.
    pub(crate) cancel: CancellationToken,
    /// Give up on calls still running (the shutdown grace is over).
    pub(crate) abandon: CancellationToken,
}

impl<H: Handler> Consumer<H> {
    /// Sets up and pulls until `cancel` fires.
    pub(crate) async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.config.max_inflight));
        let mut backoff = backoff();
        'setup: while let Some(consumer) = self.set_up().await {
            // Leases are renewed against the consumer's actual ack_wait (another worker may
            // have set it), or ours if that is shorter.
            let ack_wait = consumer.cached_info().config.ack_wait;
            let renew_every = lease::renew_interval(ack_wait.min(self.config.ack_wait));
            loop {
                match self.pull(&consumer, &slots, renew_every).await {
                    Ok(true) => backoff = self::backoff(),
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(lane = ?self.lane, %error, "setting the consumer up again");
                        self.health.set_consumer_ready(self.lane, false);
                        if !self.pause(next(&mut backoff)).await {
                            return;
                        }
                        continue 'setup;
                    }
                }
            }
        }
    }

    /// One pull request for as many messages as there are free slots. `Ok(false)` when the
    /// worker is stopping.
    async fn pull(
        &self,
        consumer: &PullConsumer,
        slots: &Arc<Semaphore>,
        renew_every: Duration,
    ) -> Result<bool, WorkerError> {
        // Only this loop takes slots, so the free count can only grow before we take them.
        let want = slots.available_permits().max(1) as u32;
        let mut permits = tokio::select! {
            () = self.cancel.cancelled() => return Ok(false),
            p = slots.clone().acquire_many_owned(want) => p.expect("the slot semaphore is never closed"),
        };
        // Not interrupted by `cancel`: it only subscribes and sends the request (no waiting
        // for messages), and dropping it half-way could strand messages at the server.
        let mut batch = consumer
            .batch()
            .max_messages(permits.num_permits())
            .expires(self.config.pull_expires)
            .messages()
            .await
            .map_err(|e| WorkerError::Pull(e.into()))?;
        let started = tokio::time::Instant::now();
        let mut received = 0;
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => {
                    self.tracker.spawn(hand_back(batch, self.abandon.clone()));
                    return Ok(false);
                }
                next = batch.next() => next,
            };
            match next {
                None => {
                    // A pull that ends empty well before it expires is not waiting for
                    // anything (e.g. the server answered at once): do not spin.
                    if received == 0 && started.elapsed() < self.config.pull_expires / 2 {
                        return Ok(self.pause(BACKOFF.0).await);
                    }
                    return Ok(true);
                }
                Some(Err(e)) => return Err(WorkerError::Pull(JetStreamError::Message(e))),
                Some(Ok(message)) => {
                    received += 1;
                    let Some(slot) = permits.split(1) else {
                        // Cannot happen: the server sends at most the number asked for.
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                        continue;
                    };
                    let (handler, abandon) = (self.handler.clone(), self.abandon.clone());
                    let slot = WorkerSlot::new(slot, slots.clone());
                    self.tracker
                        .spawn(handler.handle(message, renew_every, abandon, slot));
                }
            }
        }
    }

    /// Creates the stream and the consumer if needed, retrying until it works; `None` when the
    /// worker is stopping first.
    async fn set_up(&self) -> Option<PullConsumer> {
        let mut backoff = backoff();
        loop {
            match self.try_set_up().await {
                Ok(consumer) => {
                    let info = consumer.cached_info();
                    tracing::info!(
                        stream = self.lane.stream(),
                        consumer = %info.name,
                        filter = %info.config.filter_subject,
                        ack_wait = ?info.config.ack_wait,
                        pending = info.num_pending,
                        "consumer ready"
                    );
                    self.health.set_consumer_ready(self.lane, true);
                    return Some(consumer);
                }
                Err(error) => {
                    tracing::warn!(%error, "JetStream not ready; retrying");
                    if !self.pause(next(&mut backoff)).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn try_set_up(&self) -> Result<PullConsumer, WorkerError> {
        let (js, nats) = (&self.js, &self.config.nats);
        let stream = match self.lane {
            Lane::Calls => ferry_runtime::jetstream::ensure_calls_stream(js, nats).await,
            Lane::Callbacks => ferry_runtime::jetstream::ensure_callback_stream(js, nats).await,
        }
        .map_err(|e| WorkerError::Setup(e.into()))?;
        stream
            .create_consumer(consumer_config(&self.config, self.lane))
            .await
            .map_err(|e| WorkerError::Setup(e.into()))
    }

    /// Sleeps `d`; `false` if the worker started stopping meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}

/// The queue's shared durable consumer of `lane`.
pub(crate) fn consumer_config(config: &Config, lane: Lane) -> pull::Config {
    let queue = &config.queue_name;
    let (description, filter_subject) = match lane {
        Lane::Calls => (
            format!("ferry queue-workers of queue {queue}"),
            queue_filter(queue),
        ),
        Lane::Callbacks => (
            format!("ferry queue-workers' callback retries of queue {queue}"),
            format!("{CALLBACK_SUBJECT_PREFIX}.{queue}.>"),
        ),
    };
    pull::Config {
        durable_name: Some(lane.consumer(queue)),
        description: Some(description),
        filter_subject,
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        // Unlimited at the server: the worker bounds deliveries itself (`max_deliveries`).
        max_deliver: -1,
        max_ack_pending: i64::try_from(config.max_ack_pending).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// Hands back (`-NAK`) whatever a pull still open at shutdown delivers, until it expires.
async fn hand_back(mut batch: pull::Batch, abandon: CancellationToken) {
    loop {
        let next = tokio::select! {
            () = abandon.cancelled() => return,
            next = batch.next() => next,
        };
        match next {
            Some(Ok(message)) => {
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                let call_id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(CALL_ID_HEADER))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_else(|| "-".into());
                tracing::info!(
                    call_id,
                    sequence,
                    "stopping: handing a just-delivered call back"
                );
                if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                    tracing::warn!(%error, call_id, sequence, "cannot hand the call back");
                }
            }
            Some(Err(_)) | None => return,
        }
    }
}

/// Doubling pauses between [`BACKOFF`]'s bounds, without end.
fn backoff() -> Doubling {
    Doubling::new(BACKOFF.0, BACKOFF.1)
}

fn next(backoff: &mut Doubling) -> Duration {
    backoff.next_pause()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_consumer_is_durable_filtered_and_explicitly_acked() {
        let env: HashMap<&str, &str> = [("queue_name", "slow"), ("ack_wait", "45s")].into();
        let config = Config::from_env(&env).unwrap();
        let c = consumer_config(&config, Lane::Calls);
        assert_eq!(c.durable_name.as_deref(), Some("ferry-workers-slow"));
        assert_eq!(c.filter_subject, "ferry.calls.slow.>");
        assert_eq!(c.ack_policy, AckPolicy::Explicit);
        assert_eq!(c.deliver_policy, DeliverPolicy::All);
        assert_eq!(c.ack_wait, Duration::from_secs(45));
        assert_eq!(c.max_ack_pending, 10_000);
        assert_eq!(c.max_deliver, -1);
        let c = consumer_config(&config, Lane::Callbacks);
        assert_eq!(c.durable_name.as_deref(), Some("ferry-callbacks-slow"));
        assert_eq!(c.filter_subject, "ferry.callbacks.slow.>");
        assert_eq!((c.ack_policy, c.max_deliver), (AckPolicy::Explicit, -1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = backoff();
        let waits: Vec<u64> = (0..7).map(|_| next(&mut b).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }
}
