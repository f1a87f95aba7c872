//! Publishing async calls to JetStream, and keeping ferry's JetStream objects in place: the
//! calls stream, the dead-letter stream and the call-status bucket.
//!
//! Every submission publishes on the shared client and awaits its own acknowledgement: no
//! lock around publishing, so submissions are stored concurrently. The JetStream context
//! bounds pending acknowledgements ([`MAX_PENDING_ACKS`], below async-nats's 5000 at which
//! publishing stalls) and every submission gives up after `publish_timeout`, so a stalled
//! server turns into `503`s rather than requests that hang.
//!
//! The dead-letter stream, the call index and the status bucket are created by the same
//! background task as the calls stream, and on first use if that task has not managed yet; their handles are
//! kept once obtained (they are names, valid across NATS restarts).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{
    ContextBuilder, CreateKeyValueError, CreateStreamError, PublishAckFuture, PublishError,
    PublishErrorKind, RequestError,
};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, kv, publish::PublishAck, stream::Stream};
use bytes::Bytes;
use ferry_proto::calls::CallStatus;
use ferry_proto::jetstream::{
    CALL_ID_HEADER, CALL_INDEX_STREAM, CALLS_STREAM, DEAD_LETTER_STREAM, STATUS_BUCKET,
    STATUS_REVISION_HEADER, call_index_subject, retry_subject,
};
use ferry_proto::{FunctionRef, Name};
use ferry_runtime::backoff::Doubling;
use ferry_runtime::jetstream::{
    NatsConfig, ensure_call_index_stream, ensure_calls_stream, ensure_dead_letter_stream,
    ensure_status_bucket,
};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::call_index::CallIndex;
use crate::dead_letters::DeadLetters;
use crate::error::GatewayError;
use crate::status::StatusStore;

/// Most submissions awaiting their JetStream acknowledgement at once; more wait for a slot
/// (within `publish_timeout`).
pub(crate) const MAX_PENDING_ACKS: usize = 4096;
/// Shortest wait for one publish attempt's acknowledgement (a third of `publish_timeout`
/// otherwise) before it is sent again.
pub(crate) const PUBLISH_ATTEMPT_MIN: Duration = Duration::from_millis(500);
/// Pause before a publish is sent again.
pub(crate) const PUBLISH_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// First pause between attempts to create the JetStream objects.
const FIRST_ENSURE_DELAY: Duration = Duration::from_millis(200);
/// Longest pause between attempts to create the JetStream objects.
const MAX_ENSURE_DELAY: Duration = Duration::from_secs(5);

/// The publisher.
#[derive(Clone)]
pub(crate) struct Queue {
    client: async_nats::Client,
    js: jetstream::Context,
    /// `nats_url` without credentials ([`ferry_runtime::redact::url`]), for messages.
    url: Arc<str>,
    timeout: Duration,
    /// Wakes the stream keeper when a publish finds no stream.
    stream_missing: Arc<Notify>,
    objects: Arc<Objects>,
}

/// Handles of the dead-letter stream, the call index and the status bucket, once they exist.
struct Objects {
    config: NatsConfig,
    dead_letters: OnceCell<Stream>,
    index: OnceCell<Stream>,
    status: OnceCell<kv::Store>,
}

impl Queue {
    /// A publisher on `client` (connected or still connecting).
    pub(crate) fn new(client: async_nats::Client, config: &NatsConfig, timeout: Duration) -> Self {
        let js = ContextBuilder::new()
            .timeout(timeout)
            .max_ack_inflight(MAX_PENDING_ACKS)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Queue {
            client,
            js,
            url: ferry_runtime::redact::url(&config.url).into(),
            timeout,
            stream_missing: Arc::new(Notify::new()),
            objects: Arc::new(Objects {
                config: config.clone(),
                dead_letters: OnceCell::new(),
                index: OnceCell::new(),
                status: OnceCell::new(),
            }),
        }
    }

    /// `publish_timeout`: the budget of one submission's JetStream requests.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the client is connected to NATS right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// `503` unless connected: checked before reading a body that could not be queued.
    pub(crate) fn check_connected(&self) -> Result<(), GatewayError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(GatewayError::QueueUnavailable(format!(
                "not connected to NATS at {}",
                self.url
            )))
        }
    }

    /// The queues' depths ([`crate::queue_depth`]), per-function counts where `visible`.
    pub(crate) async fn depths(
        &self,
        visible: impl Fn(&Name) -> bool,
    ) -> Result<Vec<crate::queue_depth::QueueDepth>, GatewayError> {
        self.check_nats()?;
        crate::queue_depth::depths(&self.js, visible).await
    }

    /// `503` unless connected, for the `/system` APIs over JetStream.
    pub(crate) fn check_nats(&self) -> Result<(), GatewayError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(GatewayError::Nats(format!(
                "not connected to NATS at {}",
                self.url
            )))
        }
    }

    /// The call-status bucket (created now if the keeper has not managed yet).
    pub(crate) async fn statuses(&self) -> Result<StatusStore, GatewayError> {
        self.check_nats()?;
        let store = self
            .objects
            .status
            .get_or_try_init(|| ensure_status_bucket(&self.js, &self.objects.config))
            .await
            .map_err(|e| GatewayError::Nats(format!("the bucket {STATUS_BUCKET}: {e}")))?;
        Ok(StatusStore::new(store.clone()))
    }

    /// The dead-letter stream (created now if the keeper has not managed yet).
    pub(crate) async fn dead_letters(&self) -> Result<DeadLetters, GatewayError> {
        self.check_nats()?;
        let stream = self
            .objects
            .dead_letters
            .get_or_try_init(|| ensure_dead_letter_stream(&self.js, &self.objects.config))
            .await
            .map_err(|e| GatewayError::Nats(format!("the stream {DEAD_LETTER_STREAM}: {e}")))?;
        Ok(DeadLetters::new(
            stream.clone(),
            self.js.clone(),
            self.timeout,
        ))
    }

    /// The call index (created now if the keeper has not managed yet).
    pub(crate) async fn call_index(&self) -> Result<CallIndex, GatewayError> {
        self.check_nats()?;
        let stream = self
            .objects
            .index
            .get_or_try_init(|| ensure_call_index_stream(&self.js, &self.objects.config))
            .await
            .map_err(|e| GatewayError::Nats(format!("the stream {CALL_INDEX_STREAM}: {e}")))?;
        Ok(CallIndex::new(stream.clone(), self.timeout))
    }

    /// Adds stored call `call_id` to `function`'s recent calls: a plain publish, no
    /// acknowledgement awaited ([`crate::call_index`]).
    pub(crate) async fn index_call(&self, function: &FunctionRef, call_id: &str) {
        let subject = call_index_subject(function);
        let id = Bytes::copy_from_slice(call_id.as_bytes());
        if let Err(error) = self.client.publish(subject, id).await {
            tracing::debug!(call_id, %error, "the call could not be indexed");
        }
    }

    /// Drops the scheduled retry of the call `status` describes (a call waiting for its
    /// next attempt): its schedule message in the calls stream is purged.
    pub(crate) async fn drop_retry(&self, status: &CallStatus) -> Result<(), GatewayError> {
        let nats = |e: &dyn std::fmt::Display| GatewayError::Nats(format!("{CALLS_STREAM}: {e}"));
        let function =
            FunctionRef::parse(&status.function, &Name::default_namespace()).map_err(|e| {
                GatewayError::Internal(format!("a status record names {:?}: {e}", status.function))
            })?;
        let subject = retry_subject(&status.queue, &function, &status.call_id);
        let stream = self
            .js
            .get_stream_no_info(CALLS_STREAM)
            .await
            .map_err(|e| nats(&e))?;
        stream.purge().filter(subject).await.map_err(|e| nats(&e))?;
        Ok(())
    }

    /// Publishes `payload` on `subject` with `msg_id` as JetStream message id (so a
    /// re-submission with the same id inside the duplicate window is stored once), the call
    /// id in `Ferry-Call-Id` and the revision of its status record in `Ferry-Status-Revision`,
    /// and returns once JetStream has stored it.
    pub(crate) async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        call_id: &str,
        revision: Option<u64>,
        payload: Bytes,
    ) -> Result<PublishAck, GatewayError> {
        self.check_connected()?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        headers.insert(CALL_ID_HEADER, call_id);
        if let Some(revision) = revision {
            headers.insert(STATUS_REVISION_HEADER, revision.to_string().as_str());
        }
        // One budget for all attempts: a publish lost with the server it went to (a NATS
        // node of the cluster failing over) is sent again, which the message id makes safe:
        // JetStream stores it once however many copies arrive within the duplicate window.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let attempt_timeout = (self.timeout / 3).max(PUBLISH_ATTEMPT_MIN);
        loop {
            let stored = async {
                let ack: PublishAckFuture = self
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                    .await?;
                ack.await
            };
            let until = deadline.min(tokio::time::Instant::now() + attempt_timeout);
            let retryable = match tokio::time::timeout_at(until, stored).await {
                Ok(Ok(ack)) => return Ok(ack),
                Ok(Err(e)) if !retryable(e.kind()) => return Err(self.publish_error(e)),
                Ok(Err(e)) => self.publish_error(e),
                Err(_) => GatewayError::QueueUnavailable(format!(
                    "JetStream did not acknowledge the call within {:?}",
                    self.timeout
                )),
            };
            if tokio::time::Instant::now() + PUBLISH_RETRY_PAUSE >= deadline {
                return Err(retryable);
            }
            tracing::debug!(call_id, error = %retryable, "publishing again (same message id)");
            tokio::time::sleep(PUBLISH_RETRY_PAUSE).await;
        }
    }

    fn publish_error(&self, e: PublishError) -> GatewayError {
        match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => GatewayError::PayloadTooLarge(format!(
                "the queued message would exceed NATS's max_payload ({e})"
            )),
            PublishErrorKind::StreamNotFound => {
                self.stream_missing.notify_one();
                GatewayError::QueueUnavailable(format!(
                    "the JetStream stream {CALLS_STREAM} does not exist (yet); it is being created"
                ))
            }
            _ => GatewayError::QueueUnavailable(format!("publishing to JetStream failed: {e}")),
        }
    }

    /// Creates the calls stream, the dead-letter stream and the status bucket, retrying with
    /// backoff until all exist, and again whenever a publish finds the calls stream missing;
    /// ends when `cancel` fires.
    pub(crate) async fn keep_stream(self, cancel: CancellationToken) {
        loop {
            let mut pauses = Doubling::new(FIRST_ENSURE_DELAY, MAX_ENSURE_DELAY);
            let mut failures = 0u32;
            loop {
                let attempt = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = self.ensure_all() => r,
                };
                match attempt {
                    Ok(()) => {
                        tracing::info!(
                            streams = %format_args!(
                                "{CALLS_STREAM}, {DEAD_LETTER_STREAM}, {CALL_INDEX_STREAM}"
                            ),
                            bucket = STATUS_BUCKET,
                            "JetStream streams and call-status bucket ready"
                        );
                        break;
                    }
                    Err(error) => {
                        if failures % 10 == 0 {
                            tracing::warn!(
                                nats = %self.url, %error,
                                "cannot create the JetStream streams and bucket yet; retrying"
                            );
                        }
                        failures += 1;
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(pauses.next_pause()) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.stream_missing.notified() => {}
            }
        }
    }

    /// Creates whatever of the four objects is missing.
    async fn ensure_all(&self) -> Result<(), SetupError> {
        let config = &self.objects.config;
        ensure_calls_stream(&self.js, config)
            .await
            .map_err(SetupError::CallsStream)?;
        let dead = ensure_dead_letter_stream(&self.js, config)
            .await
            .map_err(SetupError::DeadLetterStream)?;
        let _ = self.objects.dead_letters.set(dead);
        let index = ensure_call_index_stream(&self.js, config)
            .await
            .map_err(SetupError::CallIndexStream)?;
        let _ = self.objects.index.set(index);
        let status = ensure_status_bucket(&self.js, config)
            .await
            .map_err(SetupError::StatusBucket)?;
        let _ = self.objects.status.set(status);
        Ok(())
    }
}

/// Which of the gateway's JetStream objects could not be created, and why.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    /// The calls stream.
    #[error("{CALLS_STREAM}: {0}")]
    CallsStream(#[source] CreateStreamError),
    /// The dead-letter stream.
    #[error("{DEAD_LETTER_STREAM}: {0}")]
    DeadLetterStream(#[source] CreateStreamError),
    /// The call index.
    #[error("{CALL_INDEX_STREAM}: {0}")]
    CallIndexStream(#[source] CreateStreamError),
    /// The call-status bucket.
    #[error("{STATUS_BUCKET}: {0}")]
    StatusBucket(#[source] CreateKeyValueError),
}

/// Why a message could not be deleted (a message already gone is not an error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteError {
    /// JetStream refused, with its error code.
    #[error("{0}")]
    Refused(jetstream::Error),
    /// The request went unanswered or could not be sent.
    #[error("{0}")]
    Request(#[source] RequestError),
}

/// Whether a publish that failed this way may be sent again (with the same message id): the
/// server did not answer or the connection broke, as when a NATS node goes away; or nothing
/// answered for the stream (no responders: async-nats's `StreamNotFound`), as while a
/// replicated stream elects a new leader after its leader's server died (nats-server's raft
/// election timeout is 4 to 9 s), or while the stream keeper recreates a deleted stream.
fn retryable(kind: PublishErrorKind) -> bool {
    matches!(
        kind,
        PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
    )
}

/// Deletes message `sequence` of `stream`; whether it was there. Unlike
/// `Stream::delete_message` it does not ask the server to overwrite the message on disk
/// (`no_erase`), which costs milliseconds per message; acknowledged calls are not erased
/// either.
pub(crate) async fn delete_message(
    js: &jetstream::Context,
    stream: &str,
    sequence: u64,
) -> Result<bool, DeleteError> {
    #[derive(serde::Serialize)]
    struct Request {
        seq: u64,
        no_erase: bool,
    }
    #[derive(serde::Deserialize)]
    struct Deleted {
        success: bool,
    }
    let request = Request {
        seq: sequence,
        no_erase: true,
    };
    let subject = format!("STREAM.MSG.DELETE.{stream}");
    match js.request(subject, &request).await {
        Ok(Response::Ok(Deleted { success })) => Ok(success),
        Ok(Response::Err { error }) if not_there(error.error_code()) => Ok(false),
        Ok(Response::Err { error }) => Err(DeleteError::Refused(error)),
        Err(e) => Err(DeleteError::Request(e)),
    }
}

/// Whether a message delete failed because the message is not there, by JetStream's error
/// code. nats-server answers a sequence deleted before, or one past the last, with "message
/// delete failed" (10057, its store's "no message found" or "stream store EOF"), and a delete
/// that removed nothing with "sequence not found" (10043). 10057 also stands for a store fault
/// while deleting, which the code cannot tell apart: such a dead letter reads as gone.
fn not_there(code: ErrorCode) -> bool {
    code == ErrorCode::STREAM_MESSAGE_DELETE_FAILED || code == ErrorCode::SEQUENCE_NOT_FOUND
}
