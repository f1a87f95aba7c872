//! Publishing async calls to JetStream, and keeping the calls stream in place.
//!
//! Every submission publishes on the shared client and awaits its own acknowledgement: no
//! lock around publishing, so submissions are stored concurrently. The JetStream context
//! bounds pending acknowledgements ([`MAX_PENDING_ACKS`], below async-nats's 5000 at which
//! publishing stalls) and every submission gives up after `publish_timeout`, so a stalled
//! server turns into `503`s rather than requests that hang.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{
    ContextBuilder, PublishAckFuture, PublishError, PublishErrorKind,
};
use async_nats::jetstream::{self, publish::PublishAck};
use bytes::Bytes;
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM};
use ferry_runtime::jetstream::{NatsConfig, ensure_calls_stream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::GatewayError;

/// Most submissions awaiting their JetStream acknowledgement at once; more wait for a slot
/// (within `publish_timeout`).
pub(crate) const MAX_PENDING_ACKS: usize = 4096;
/// Longest pause between attempts to create the calls stream.
const MAX_ENSURE_DELAY: Duration = Duration::from_secs(5);

/// The publisher.
#[derive(Clone)]
pub(crate) struct Queue {
    client: async_nats::Client,
    js: jetstream::Context,
    url: Arc<str>,
    timeout: Duration,
    /// Wakes the stream keeper when a publish finds no stream.
    stream_missing: Arc<Notify>,
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
            url: config.url.as_str().into(),
            timeout,
            stream_missing: Arc::new(Notify::new()),
        }
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

    /// Publishes `payload` on `subject` with the call id as JetStream message id (so a
    /// re-submission with the same id inside the duplicate window is stored once) and
    /// returns once JetStream has stored it.
    pub(crate) async fn publish(
        &self,
        subject: String,
        call_id: &str,
        payload: Bytes,
    ) -> Result<PublishAck, GatewayError> {
        self.check_connected()?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, call_id);
        headers.insert(CALL_ID_HEADER, call_id);
        let stored = async {
            let ack: PublishAckFuture = self
                .js
                .publish_with_headers(subject, headers, payload)
                .await?;
            ack.await
        };
        match tokio::time::timeout(self.timeout, stored).await {
            Ok(Ok(ack)) => Ok(ack),
            Ok(Err(e)) => Err(self.publish_error(e)),
            Err(_) => Err(GatewayError::QueueUnavailable(format!(
                "JetStream did not acknowledge the call within {:?}",
                self.timeout
            ))),
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

    /// Creates the calls stream, retrying with backoff until it exists, and again whenever a
    /// publish finds it missing; ends when `cancel` fires.
    pub(crate) async fn keep_stream(self, config: NatsConfig, cancel: CancellationToken) {
        loop {
            let mut delay = Duration::from_millis(200);
            let mut failures = 0u32;
            loop {
                let attempt = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = ensure_calls_stream(&self.js, &config) => r,
                };
                match attempt {
                    Ok(_) => {
                        tracing::info!(stream = CALLS_STREAM, "JetStream calls stream ready");
                        break;
                    }
                    Err(error) => {
                        if failures % 10 == 0 {
                            tracing::warn!(
                                stream = CALLS_STREAM, nats = %self.url, %error,
                                "cannot create the calls stream yet; retrying"
                            );
                        }
                        failures += 1;
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_ENSURE_DELAY);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.stream_missing.notified() => {}
            }
        }
    }
}
