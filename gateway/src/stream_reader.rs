//! Reading a stream's messages under a subject filter with a short-lived ephemeral pull
//! consumer (no acks, in memory, one replica) that starts after a given sequence and is
//! fetched without waiting, so an empty range answers at once; the consumer's pending count
//! says how many were left. Used for the dead letters and the call index.

use std::ops::ControlFlow;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{Message, stream::Stream};
use futures_util::StreamExt as _;

use crate::error::GatewayError;

/// An abandoned reader is removed by the server after this.
const READER_IDLE: Duration = Duration::from_secs(30);

/// Reads one stream; every fetch is given up after `timeout`.
#[derive(Clone)]
pub(crate) struct Reader {
    stream: Stream,
    timeout: Duration,
}

impl Reader {
    pub(crate) fn new(stream: Stream, timeout: Duration) -> Self {
        Reader { stream, timeout }
    }

    /// The stream.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// `e` as a NATS error naming the stream.
    pub(crate) fn error(&self, e: impl std::fmt::Display) -> GatewayError {
        let name = &self.stream.cached_info().config.name;
        GatewayError::Nats(format!("the stream {name}: {e}"))
    }

    /// Delivers the messages under `filter` after sequence `after` to `visit`, oldest first,
    /// `batch` per fetch, until it breaks or none are left; returns how many were left after
    /// the last one.
    pub(crate) async fn read(
        &self,
        filter: &str,
        after: u64,
        headers_only: bool,
        batch: usize,
        mut visit: impl FnMut(u64, &Message) -> ControlFlow<()>,
    ) -> Result<u64, GatewayError> {
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after.saturating_add(1),
                },
                ack_policy: AckPolicy::None,
                filter_subject: filter.to_string(),
                headers_only,
                inactive_threshold: READER_IDLE,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(e))?;
        let result = self.drain(&consumer, batch, &mut visit).await;
        let (stream, name) = (self.stream.clone(), consumer.cached_info().name.clone());
        tokio::spawn(async move {
            if let Err(error) = stream.delete_consumer(&name).await {
                tracing::debug!(%error, consumer = %name, "stream reader left to expire");
            }
        });
        result
    }

    async fn drain(
        &self,
        consumer: &PullConsumer,
        batch: usize,
        visit: &mut impl FnMut(u64, &Message) -> ControlFlow<()>,
    ) -> Result<u64, GatewayError> {
        let mut pending = consumer.cached_info().num_pending;
        while pending > 0 {
            let fetch = async {
                let mut messages = consumer
                    .fetch()
                    .max_messages(batch)
                    .messages()
                    .await
                    .map_err(|e| self.error(e))?;
                let mut got = 0;
                while let Some(message) = messages.next().await {
                    let message = message.map_err(|e| self.error(e))?;
                    let info = message.info().map_err(|e| self.error(e))?;
                    let sequence = info.stream_sequence;
                    pending = info.pending;
                    got += 1;
                    if visit(sequence, &message).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok::<_, GatewayError>(if got == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            };
            let flow = tokio::time::timeout(self.timeout, fetch)
                .await
                .map_err(|_| self.error(format!("no answer within {:?}", self.timeout)))??;
            if flow.is_break() {
                break;
            }
        }
        Ok(pending)
    }
}
