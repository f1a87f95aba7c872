//! `GET /system/logs`: the query and one NDJSON line of the answer.

use serde::{Deserialize, Serialize};

/// The query string of `GET /system/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Function name (required).
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Only this replica.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// Only lines after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only the last N lines (0 or negative: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<i64>,
    /// Keep the stream open for new lines.
    #[serde(default)]
    pub follow: bool,
}

/// One log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMessage {
    /// Function name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Replica that wrote the line.
    pub instance: String,
    /// When, RFC 3339 with nanoseconds.
    pub timestamp: String,
    /// The line.
    pub text: String,
}
