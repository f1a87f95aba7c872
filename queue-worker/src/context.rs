//! What every call and every callback delivery works with, and how a message ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, AckKind, Message};
use ferry_invoke::Invoker;
use ferry_proto::calls::CallState;
use ferry_proto::jetstream::STATUS_REVISION_HEADER;

use crate::Config;
use crate::callback_client::CallbackClient;
use crate::fairness::Fairness;
use crate::metrics::Metrics;
use crate::result::Budget;
use crate::signing::SigningKey;
use crate::status::StatusStore;

/// How long a message waits before it is offered again after an infrastructure failure (the
/// status bucket, the dead-letter or callback stream could not be used).
pub(crate) const REQUEUE_DELAY: Duration = Duration::from_secs(5);

/// The header JetStream puts on a message a schedule published.
pub(crate) const SCHEDULER_HEADER: &str = "Nats-Scheduler";

/// Shared by all calls and callback deliveries of a worker.
pub(crate) struct Context {
    pub(crate) config: Arc<Config>,
    /// Callbacks (http and https), held to `callback_allow` / `callback_deny`.
    pub(crate) http: CallbackClient,
    /// Signs callbacks (`callback_signing_key_file`); `None`: they go unsigned.
    pub(crate) signing_key: Option<SigningKey>,
    /// Function replicas: choice, scaling from zero, settings.
    pub(crate) invoker: Invoker,
    /// Memory for results kept whole.
    pub(crate) results: Budget,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) status: StatusStore,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) fairness: Arc<Fairness>,
}

impl Context {
    /// Records the end-to-end latency of a call submitted at `submitted` that just reached
    /// its final `state`.
    pub(crate) fn observe_end(&self, state: CallState, submitted: SystemTime) {
        let seconds = SystemTime::now()
            .duration_since(submitted)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        self.metrics
            .end_to_end
            .with_label_values(&[state.as_str()])
            .observe(seconds);
    }
}

/// How a handled message ends. Applied last: nothing happens to a call after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Done with it: acknowledged. A plain ack: if it is lost, the message comes back and
    /// its status record (final by then) says it was handled, so it is acknowledged again.
    Ack,
    /// Offered again after the delay (a retry, or a deferral).
    Nak(Duration),
    /// It can never be handled: terminated, never redelivered.
    Term,
}

impl Disposition {
    /// Applies `self` to `message`.
    pub(crate) async fn apply(self, message: &Message) {
        let result = match self {
            Disposition::Ack => message.ack().await,
            // Fire-and-forget (flushed at shutdown): if it is lost the lease runs out and the
            // message comes back anyway.
            Disposition::Nak(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
            Disposition::Term => message.double_ack_with(AckKind::Term).await,
        };
        if let Err(error) = result {
            tracing::warn!(%error, disposition = ?self, "acknowledgement not confirmed; \
                the message may be delivered again");
        }
    }
}

/// The delivery facts of a received message: its stream sequence, how often it was delivered,
/// when JetStream stored it, whether a retry schedule published it, and the revision of the
/// status record it was queued with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Receipt {
    pub(crate) sequence: u64,
    pub(crate) delivered: u32,
    pub(crate) published: SystemTime,
    /// Published by a message schedule (a retry that became due).
    pub(crate) scheduled: bool,
    /// `Ferry-Status-Revision`: the gateway's `queued` record is at this revision.
    pub(crate) revision: Option<u64>,
}

impl Receipt {
    pub(crate) fn of(message: &Message) -> Receipt {
        let headers = message.headers.as_ref();
        let scheduled = headers.is_some_and(|h| h.get(SCHEDULER_HEADER).is_some());
        let revision = headers
            .and_then(|h| h.get(STATUS_REVISION_HEADER))
            .and_then(|v| v.as_str().parse().ok());
        match message.info() {
            Ok(info) => {
                let nanos = u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0);
                Receipt {
                    sequence: info.stream_sequence,
                    delivered: u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
                    published: UNIX_EPOCH + Duration::from_nanos(nanos),
                    scheduled,
                    revision,
                }
            }
            Err(_) => Receipt {
                sequence: 0,
                delivered: 1,
                published: SystemTime::now(),
                scheduled,
                revision,
            },
        }
    }

    /// How long ago JetStream stored the message.
    pub(crate) fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.published)
            .unwrap_or(Duration::ZERO)
    }

    /// When JetStream stored the message, Unix milliseconds.
    pub(crate) fn published_unix_ms(&self) -> u64 {
        self.published
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
