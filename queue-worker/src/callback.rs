//! POSTing a call's result to its `X-Callback-Url`.
//!
//! As OpenFaaS does: the body is the function's response body (empty when the function could
//! not be reached, or when the call expired before it ran); the headers are the function's
//! response headers (minus hop-by-hop ones and `Content-Length`) plus
//!
//! | header | value |
//! |---|---|
//! | `X-Call-Id` | the call id |
//! | `X-Function-Name` | `Function` as queued, e.g. `figlet` or `figlet.dev` |
//! | `X-Function-Status` | the function's status; 503 when it could not be reached, 504 when it ran out of `upstream_timeout` or expired before it ran |
//! | `X-Duration-Seconds` | the last invocation, from the message's receipt to its end, six decimals |
//! | `X-Retry` | retries before this result: attempts − 1 (0 when the first attempt settled it) |
//! | `X-Retry-Max` | retries the call could get: its maximum attempts − 1 |
//! | `X-Call-State` | the state the call ends in: `succeeded`, `failed`, `dead_lettered` or `expired` |
//! | `X-Ferry-Timestamp`, `X-Ferry-Signature` | with a signing key, unless the result is streamed: the attempt's Unix time and `v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>` ([`crate::signing`]); a function's own are dropped |
//!
//! A delivery succeeds when the receiver answers 2xx. Everything needed to deliver, or to
//! deliver again later, is one [`CallbackJob`]: the worker tries it once inline and, if that
//! fails, publishes it to the callback stream for the retry loop (`callback_retry`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ferry_proto::QueueRequest;
use ferry_proto::calls::{Attempt, CallResult, CallState};
use ferry_proto::headers::{
    CALL_ID, DURATION_SECONDS, FUNCTION_NAME, FUNCTION_STATUS, RETRY, RETRY_MAX,
};
use ferry_runtime::callback_guard::GuardError;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::WorkerError;
use crate::callback_client::{self, CallbackClient};
use crate::error::CallbackUrlError;
use crate::signing::{self, SigningKey};
use ferry_runtime::headers::strip_hop_by_hop;

/// The state the call ends in, on a callback.
pub const CALL_STATE: &str = "x-call-state";

/// A callback to deliver: the result, where it goes, and what the retry loop needs to finish
/// the call. Published as JSON to `ferry.callbacks.<queue>.<name>.<namespace>` when the first
/// delivery fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackJob {
    /// The call id.
    pub call_id: String,
    /// The callback URL.
    pub url: String,
    /// `Function` as queued (`X-Function-Name`).
    pub function: String,
    /// The queue the call came from.
    pub queue: String,
    /// The state the call ends in once the callback is delivered (`X-Call-State`).
    pub state: CallState,
    /// The function's answer (or the status standing in for a failure).
    pub result: CallResult,
    /// Duration of the last invocation (`X-Duration-Seconds`).
    pub duration_seconds: f64,
    /// Invocations made.
    pub attempts: u32,
    /// Every invocation, for the dead letter if the callback is never delivered.
    #[serde(default)]
    pub attempt_history: Vec<Attempt>,
    /// Invocations allowed.
    pub max_attempts: u32,
    /// Deliveries tried before the job was queued.
    #[serde(default)]
    pub callback_attempts: u32,
    /// When JetStream stored the call, Unix milliseconds (for end-to-end latency).
    pub submitted_unix_ms: u64,
    /// The original call, for the dead letter if the callback is never delivered.
    pub request: QueueRequest,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// It did not (or could not be reached).
    Failed {
        /// Its status, if it answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Whether trying again cannot help (an unusable URL).
        permanent: bool,
    },
}

/// `X-Duration-Seconds`: seconds with six decimals, e.g. `1.250000`.
pub fn duration_seconds(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// Parses a callback URL: an absolute `http://` or `https://` URL with a host. Errors quote
/// it without user-info, query and fragment ([`ferry_runtime::redact::callback_url`]).
pub fn callback_url(raw: &str) -> Result<Url, WorkerError> {
    let shown = || ferry_runtime::redact::callback_url(raw);
    let url = Url::parse(raw).map_err(|source| CallbackUrlError::Parse {
        shown: shown(),
        source,
    })?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(CallbackUrlError::NotHttp { shown: shown() }.into()),
    }
}

/// A [`CallResult`] from an HTTP answer (header names lower-case, values as text).
pub fn call_result(status: u16, headers: &HeaderMap, body: &Bytes) -> CallResult {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    CallResult {
        status,
        headers: map,
        body: body.to_vec(),
    }
}

/// The callback's headers for `job`.
pub fn callback_headers(job: &CallbackJob) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in &job.result.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(name.clone(), value);
            }
        }
    }
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    headers.remove(signing::TIMESTAMP_HEADER);
    headers.remove(signing::SIGNATURE_HEADER);
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(CALL_ID, &job.call_id);
    set(FUNCTION_NAME, &job.function);
    set(FUNCTION_STATUS, &job.result.status.to_string());
    set(DURATION_SECONDS, &format!("{:.6}", job.duration_seconds));
    set(RETRY, &job.attempts.saturating_sub(1).to_string());
    set(RETRY_MAX, &job.max_attempts.saturating_sub(1).to_string());
    set(CALL_STATE, job.state.as_str());
    headers
}

/// POSTs `job`, its result body included, to its URL within `timeout`; signed with `key`, if
/// any, at the time of this attempt.
pub async fn deliver(
    client: &CallbackClient,
    job: &CallbackJob,
    key: Option<&SigningKey>,
    timeout: Duration,
) -> Delivery {
    let mut headers = callback_headers(job);
    if let Some(key) = key {
        key.sign_headers(&mut headers, signing::now_unix(), &job.result.body);
    }
    let body = reqwest::Body::from(job.result.body.clone());
    deliver_with(client, job, headers, body, timeout).await
}

/// POSTs `job` with `headers` and `body` (the result body, read as it is sent: then it cannot
/// be signed) to its URL within `timeout`.
pub async fn deliver_with(
    client: &CallbackClient,
    job: &CallbackJob,
    headers: HeaderMap,
    body: reqwest::Body,
    timeout: Duration,
) -> Delivery {
    let url = match callback_url(&job.url) {
        Ok(url) => url,
        Err(error) => {
            return Delivery::Failed {
                status: None,
                error: error.to_string(),
                permanent: true,
            };
        }
    };
    if let Err(refused) = client.check(&url) {
        return refusal(&refused);
    }
    let send = async {
        let response = client
            .http()
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        // Read the (ignored) answer so the connection can be reused.
        response.bytes().await?;
        Ok::<_, reqwest::Error>(status)
    };
    let failed = |status, error: String| Delivery::Failed {
        status,
        error,
        permanent: false,
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => failed(
            None,
            format!("the callback receiver did not answer within {timeout:?}"),
        ),
        Ok(Err(e)) => match callback_client::refusal(&e) {
            Some(refused) => refusal(refused),
            // reqwest quotes the URL, query string included: not in logs and records.
            None => failed(None, WorkerError::Callback(e.without_url()).to_string()),
        },
        Ok(Ok(status)) if status.is_success() => Delivery::Delivered(status.as_u16()),
        Ok(Ok(status)) => failed(
            Some(status.as_u16()),
            format!("the callback receiver answered {status}"),
        ),
    }
}

/// A delivery the destination policy stopped (`callback_allow`, `callback_deny`): final
/// unless it was a DNS failure.
fn refusal(refused: &GuardError) -> Delivery {
    Delivery::Failed {
        status: None,
        error: refused.to_string(),
        permanent: refused.is_final(),
    }
}

#[cfg(test)]
mod tests;
