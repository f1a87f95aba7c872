//! The JSON error body every ferry API answers with.

use serde::{Deserialize, Serialize};

/// `{"message": "..."}`: what was wrong, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
}

impl ErrorBody {
    /// A body with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ErrorBody {
            message: message.into(),
        }
    }
}
