//! What reaching a function can fail with, before any request is sent to it. Each binary maps
//! these to its own errors (the gateway to HTTP statuses, the queue-worker to call outcomes).

use std::time::Duration;

use ferry_proto::NameError;

use crate::provider::ProviderCallError;

/// Why no replica could be chosen for a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The name is not `name` or `name.namespace` with DNS-label parts.
    #[error("invalid function name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: NameError,
    },
    /// The provider does not know the function.
    #[error("function {0} not found")]
    FunctionNotFound(String),
    /// The function exists but no replica is ready (and scaling from zero is off).
    #[error("no ready replica of function {function} ({replicas} desired)")]
    NoReadyReplica {
        /// The function as addressed.
        function: String,
        /// Desired replicas per the provider.
        replicas: u64,
    },
    /// Scaling from zero: no replica became ready within `scale_from_zero_timeout`.
    #[error("function {function} did not become ready within {timeout:?} ({detail})")]
    NotReadyInTime {
        /// The function as addressed.
        function: String,
        /// `scale_from_zero_timeout`.
        timeout: Duration,
        /// What was seen last (replicas running, provider errors).
        detail: String,
    },
    /// The provider could not be reached or answered something unusable.
    #[error("functions provider: {0}")]
    Provider(#[from] ProviderCallError),
    /// Every replica of the last list failed, and the provider could not give a new one.
    #[error(
        "functions provider: every known replica of {0} failed, and no new list could be fetched"
    )]
    ReplicasExhausted(String),
}

impl InvokeError {
    /// [`InvokeError::InvalidName`] for `name`.
    pub fn invalid_name(name: &str, reason: NameError) -> Self {
        InvokeError::InvalidName {
            name: name.to_string(),
            reason,
        }
    }
}
