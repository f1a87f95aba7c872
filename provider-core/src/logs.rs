//! `GET /system/logs` parts every backend shares: the query ([`LogQuery`]), one line as
//! NDJSON ([`encode`]: a [`LogMessage`] and a newline) and the streamed response
//! ([`ndjson_response`]).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use ferry_proto::FunctionRef;
use ferry_proto::logs::LogMessage;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::api::function_ref;
use crate::error::ApiError;

/// A parsed `/system/logs` query.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    /// The function.
    pub function: FunctionRef,
    /// Only the container whose id starts with this.
    pub instance: Option<String>,
    /// The last N lines already written (None: all).
    pub tail: Option<u64>,
    /// Only lines at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Keep the stream open for new lines.
    pub follow: bool,
}

impl LogQuery {
    /// Parses the query string; errors name the parameter.
    pub fn parse<E: From<ApiError>>(q: &HashMap<String, String>) -> Result<LogQuery, E> {
        let bad = |m: String| E::from(ApiError::BadRequest(m));
        let param = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let name = param("name")
            .ok_or_else(|| bad("the \"name\" query parameter (the function) is required".into()))?;
        let tail = match param("tail") {
            None => None,
            Some(t) => {
                let n: i64 = t
                    .parse()
                    .map_err(|_| bad(format!("tail={t:?} is not a whole number")))?;
                u64::try_from(n).ok().filter(|n| *n > 0)
            }
        };
        let since = match param("since") {
            None => None,
            Some(s) => Some(OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
                bad(format!(
                    "since={s:?} is not an RFC 3339 time ({e}), e.g. 2024-05-01T12:00:00Z"
                ))
            })?),
        };
        let follow = match param("follow") {
            None => false,
            Some(v) => {
                parse_bool(v).ok_or_else(|| bad(format!("follow={v:?} is not true or false")))?
            }
        };
        Ok(LogQuery {
            function: function_ref(name, q, None).map_err(E::from)?,
            instance: param("instance").map(str::to_string),
            tail,
            since,
            follow,
        })
    }

    /// Whether lines of replica `container_id` are asked for (`instance` is a prefix of it).
    pub fn wants(&self, container_id: &str) -> bool {
        self.instance
            .as_deref()
            .is_none_or(|i| container_id.starts_with(i))
    }
}

/// Go's `strconv.ParseBool`, which OpenFaaS uses for `follow`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// One log line as NDJSON: `instance` is cut to 12 characters (a short container or task id).
pub fn encode(f: &FunctionRef, instance: &str, timestamp: String, text: String) -> Bytes {
    let message = LogMessage {
        name: f.name.to_string(),
        namespace: f.namespace.to_string(),
        instance: instance.chars().take(12).collect(),
        timestamp,
        text,
    };
    let mut json = serde_json::to_vec(&message)
        .unwrap_or_else(|_| br#"{"text":"failed to serialize log message"}"#.to_vec());
    json.push(b'\n');
    Bytes::from(json)
}

/// The streamed NDJSON answer: every line sent to the other end of `rx`, flushed as it comes,
/// until that end is dropped.
pub fn ndjson_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(lines))
        .expect("static response parts")
}
