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
    Config(#[from] InvalidConfig),
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
    InvalidMessage(#[from] InvalidMessage),
    /// The provider's credentials could not be read (`basic_auth`).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
    /// No replica of the function could be chosen (no ready replica in time, the provider
    /// unreachable, the function unknown).
    #[error("{0}")]
    Invoke(#[from] ferry_invoke::InvokeError),
    /// No replica could be connected to, or the exchange with it failed mid-call.
    #[error("function unreachable: {0}")]
    Unreachable(#[from] Unreachable),
    /// The function call ran out of its timeout (its answer or its body did not come in time).
    #[error("the function did not finish within its timeout ({0:?})")]
    Timeout(Duration),
    /// The callback signing key cannot be used (`callback_signing_key_file` set but missing,
    /// unreadable, or listing no key). Never contains the key.
    #[error("callback signing key: {0}")]
    SigningKey(#[from] SigningKeyError),
    /// The callback URL cannot be used.
    #[error("invalid callback URL: {0}")]
    CallbackUrl(#[from] CallbackUrlError),
    /// The callback POST failed or timed out (an answer with any status is not an error).
    #[error("callback failed: {0}")]
    Callback(#[source] reqwest::Error),
}

/// A configuration built by hand that [`Config::validate`](crate::Config::validate) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    /// `queue_name` is not a queue name.
    #[error("queue_name {0:?} is not valid")]
    QueueName(String),
    /// `max_inflight` is 0 or above `max_ack_pending`.
    #[error("need 1 <= max_inflight <= max_ack_pending")]
    Inflight,
    /// `ack_wait` is below 1 s.
    #[error("ack_wait must be at least 1s")]
    AckWait,
    /// A timeout is zero.
    #[error("upstream_timeout, callback_timeout and pull_expires must be > 0")]
    Timeouts,
    /// An attempt count is out of 1 to 100.
    #[error("max_retry_attempts and callback_max_attempts must be 1 to 100")]
    Attempts,
    /// A wait is zero, or a maximum below its initial wait.
    #[error("retry waits must be > 0, the maximum at least the initial")]
    Waits,
    /// `max_deliveries` or `max_call_duration` is zero.
    #[error("max_deliveries and max_call_duration must be > 0")]
    Deliveries,
    /// A result size is below 1 KiB.
    #[error("max_buffered_result and result_memory must be at least 1KiB")]
    ResultSizes,
    /// `max_inflight_per_function` is zero.
    #[error("max_inflight_per_function must be at least 1")]
    PerFunction,
}

/// Why a queued message cannot be a call.
#[derive(Debug, thiserror::Error)]
pub enum InvalidMessage {
    /// `Method` is not an HTTP method.
    #[error("invalid Method {0:?}")]
    Method(String),
    /// `Function` is not a function name.
    #[error("invalid Function: {0}")]
    Function(#[source] ferry_proto::name::NameError),
    /// `Path` climbs above the function's root.
    #[error("Path {0:?} leaves the function")]
    PathLeaves(String),
    /// `Path` and `QueryString` make no valid request target.
    #[error("Path or QueryString: {0}")]
    PathOrQuery(#[source] http::uri::InvalidUri),
    /// No request URI could be built with them.
    #[error("the request URI: {0}")]
    Uri(#[source] http::Error),
}

/// Why a function's replica could not be reached, or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// Connecting to the replica, or the exchange with it, failed (`reason`: the error chain).
    #[error("replica {replica}: {reason}")]
    Replica {
        /// The replica's address.
        replica: http::uri::Authority,
        /// What failed.
        reason: String,
    },
    /// The response's body broke off before its end.
    #[error("the response broke off: {0}")]
    BrokeOff(String),
}

/// Why the callback signing key cannot be used. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// The file could not be read (or is missing where it was set explicitly).
    #[error("{}: {source}", path.display())]
    Read {
        /// The key file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file lists no key.
    #[error("{}: no key in the file", path.display())]
    Empty {
        /// The key file.
        path: std::path::PathBuf,
    },
}

/// Why a callback URL cannot be used; `shown` is the URL without user-info, query and
/// fragment.
#[derive(Debug, thiserror::Error)]
pub enum CallbackUrlError {
    /// Not a URL.
    #[error("{shown}: {source}")]
    Parse {
        /// The URL as it may be shown.
        shown: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// Not an absolute `http://` or `https://` URL with a host.
    #[error("{shown}: not an absolute http(s) URL")]
    NotHttp {
        /// The URL as it may be shown.
        shown: String,
    },
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
            WorkerError::InvalidMessage(InvalidMessage::Method("x".into())).function_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
