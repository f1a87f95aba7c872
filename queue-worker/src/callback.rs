//! POSTing a call's result to its `X-Callback-Url`.
//!
//! As OpenFaaS does: the body is the function's response body (empty when the function could
//! not be reached); the headers are the function's response headers (minus hop-by-hop ones and
//! `Content-Length`) plus `X-Call-Id`, `X-Function-Name` (the `Function` as queued, e.g.
//! `figlet` or `figlet.dev`), `X-Function-Status` (the function's status; 503 when it could not
//! be reached, 504 when it ran out of `upstream_timeout`) and `X-Duration-Seconds` (from the
//! message's receipt to the end of the call, six decimals). The callback's own status is only
//! reported to the caller; retrying failed callbacks is a later step.

use std::time::Duration;

use bytes::Bytes;
use ferry_proto::headers::{CALL_ID, DURATION_SECONDS, FUNCTION_NAME, FUNCTION_STATUS};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, StatusCode};
use reqwest::Url;

use crate::WorkerError;
use crate::invoke::strip_hop_by_hop;

/// The outcome of a call, as the callback receives it.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// `Function` as queued.
    pub function: String,
    /// The call id, if the call has one.
    pub call_id: Option<String>,
    /// The function's status, or the status standing in for a failure.
    pub status: StatusCode,
    /// The function's response headers (none after a failure).
    pub headers: HeaderMap,
    /// The function's response body (empty after a failure).
    pub body: Bytes,
    /// From receipt of the message to the end of the call.
    pub duration: Duration,
}

/// `X-Duration-Seconds`: seconds with six decimals, e.g. `1.250000`.
pub fn duration_seconds(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// Parses a callback URL: an absolute `http://` or `https://` URL with a host.
pub fn callback_url(raw: &str) -> Result<Url, WorkerError> {
    let url = Url::parse(raw).map_err(|e| WorkerError::CallbackUrl(format!("{raw:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(WorkerError::CallbackUrl(format!(
            "{raw:?}: not an absolute http(s) URL"
        ))),
    }
}

/// The callback's headers for `result`.
pub fn callback_headers(result: &CallResult) -> HeaderMap {
    let mut headers = result.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(FUNCTION_NAME, &result.function);
    set(FUNCTION_STATUS, result.status.as_str());
    set(DURATION_SECONDS, &duration_seconds(result.duration));
    match &result.call_id {
        Some(id) => set(CALL_ID, id),
        None => {
            headers.remove(CALL_ID);
        }
    }
    headers
}

/// POSTs `result` to `url` within `timeout`; returns the receiver's status (any status: the
/// caller decides what a non-2xx means).
pub async fn post(
    client: &reqwest::Client,
    url: Url,
    result: &CallResult,
    timeout: Duration,
) -> Result<StatusCode, WorkerError> {
    let send = async {
        let response = client
            .post(url)
            .headers(callback_headers(result))
            .body(result.body.clone())
            .send()
            .await?;
        let status = response.status();
        // Read the (ignored) answer so the connection can be reused.
        response.bytes().await?;
        Ok::<_, reqwest::Error>(status)
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => Err(WorkerError::Timeout(timeout)),
        Ok(Err(e)) => Err(WorkerError::Callback(e)),
        Ok(Ok(status)) => Ok(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_six_decimals() {
        assert_eq!(duration_seconds(Duration::ZERO), "0.000000");
        assert_eq!(duration_seconds(Duration::from_millis(1250)), "1.250000");
        assert_eq!(duration_seconds(Duration::from_nanos(1_500)), "0.000002");
        assert_eq!(duration_seconds(Duration::from_secs(3600)), "3600.000000");
    }

    #[test]
    fn callback_urls() {
        assert!(callback_url("http://127.0.0.1:9000/cb?x=1").is_ok());
        assert!(callback_url("https://hooks.example.com/cb").is_ok());
        for bad in ["/relative", "ftp://h/x", "http://", ""] {
            assert!(
                matches!(callback_url(bad), Err(WorkerError::CallbackUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn headers_carry_the_function_response_and_the_four_x_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("x-custom", HeaderValue::from_static("kept"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("x-duration-seconds", HeaderValue::from_static("0.1"));
        let result = CallResult {
            function: "figlet.dev".into(),
            call_id: Some("c-1".into()),
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"hello"),
            duration: Duration::from_millis(2500),
        };
        let h = callback_headers(&result);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "content-type",
                "x-call-id",
                "x-custom",
                "x-duration-seconds",
                "x-function-name",
                "x-function-status"
            ]
        );
        assert_eq!(h["x-call-id"], "c-1");
        assert_eq!(h["x-function-name"], "figlet.dev");
        assert_eq!(h["x-function-status"], "201");
        assert_eq!(h["x-duration-seconds"], "2.500000");

        let failed = CallResult {
            call_id: None,
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            ..result
        };
        let h = callback_headers(&failed);
        assert_eq!(h["x-function-status"], "503");
        assert!(!h.contains_key("x-call-id"));
    }
}
