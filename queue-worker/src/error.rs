//! The worker's errors, in one place: what stops [`run`](crate::run) and what can go wrong
//! with one call.

use std::time::Duration;

use http::StatusCode;

/// Everything the worker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is unusable (only for a [`Config`](crate::Config) built by hand;
    /// `Config::from_env` reports an `EnvError`).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The NATS client could not be created (a malformed `nats_url`; a server that is down is
    /// not an error, the worker waits for it).
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The `/healthz` listener failed.
    #[error("health endpoint failed: {0}")]
    Serve(#[from] std::io::Error),
    /// JetStream could not be set up (stream or consumer); retried until it works.
    #[error("JetStream set-up failed: {0}")]
    Setup(#[source] JetStreamError),
    /// A pull request failed (e.g. the consumer was deleted); the consumer is set up again.
    #[error("pulling messages failed: {0}")]
    Pull(#[source] JetStreamError),
    /// A queued message cannot be a call (not a `QueueRequest`, or names no valid function,
    /// path or method). It is terminated.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The provider's credentials could not be read (`basic_auth`).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
    /// No replica of the function could be chosen (no ready replica in time, the provider
    /// unreachable, the function unknown).
    #[error("{0}")]
    Invoke(#[from] ferry_invoke::InvokeError),
    /// No replica could be connected to, or the exchange with it failed mid-call.
    #[error("function unreachable: {0}")]
    Unreachable(String),
    /// The function call ran out of its timeout (its answer or its body did not come in time).
    #[error("the function did not finish within its timeout ({0:?})")]
    Timeout(Duration),
    /// The callback signing key cannot be used (`callback_signing_key_file` set but missing,
    /// unreadable, or listing no key). Never contains the key.
    #[error("callback signing key: {0}")]
    SigningKey(String),
    /// The callback URL cannot be used.
    #[error("invalid callback URL: {0}")]
    CallbackUrl(String),
    /// The callback POST failed or timed out (an answer with any status is not an error).
    #[error("callback failed: {0}")]
    Callback(#[source] reqwest::Error),
}

/// What one of the worker's own JetStream operations failed with: creating a stream, the
/// status bucket or a consumer, or pulling messages.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// A stream could not be created or updated.
    #[error(transparent)]
    Stream(#[from] async_nats::jetstream::context::CreateStreamError),
    /// The call-status bucket could not be created or updated.
    #[error(transparent)]
    Bucket(#[from] async_nats::jetstream::context::CreateKeyValueError),
    /// The durable consumer could not be created.
    #[error(transparent)]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// A pull request could not be sent.
    #[error(transparent)]
    Batch(#[from] async_nats::jetstream::consumer::pull::BatchError),
    /// A pull ended with an error instead of a message.
    #[error("{0}")]
    Message(async_nats::Error),
}

impl WorkerError {
    /// The status reported as `X-Function-Status` when a call fails this way: 503 when the
    /// function cannot be reached, as OpenFaaS's worker does; 504 when it runs out of its
    /// timeout; 404 when it does not exist (any more).
    pub fn function_status(&self) -> StatusCode {
        match self {
            WorkerError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            WorkerError::Invoke(ferry_invoke::InvokeError::FunctionNotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_statuses() {
        assert_eq!(
            WorkerError::Timeout(Duration::from_secs(1)).function_status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            WorkerError::InvalidMessage("x".into()).function_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
