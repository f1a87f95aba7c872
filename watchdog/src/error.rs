//! [`WatchdogError`]: everything that can go wrong, and (in [`WatchdogError::into_response`])
//! the one place where a failure becomes an HTTP response.

use std::process::ExitStatus;
use std::time::Duration;

use ferry_proto::headers;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, BoxError, full};
use crate::config::ConfigError;

/// An error of the watchdog: fatal ones end [`crate::run`], the others answer one request.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The configuration cannot be used (fatal; `main` exits with 64).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The function process could not be started (fatal in http mode, 500 otherwise).
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The http-mode function process ended on its own (fatal).
    #[error("function process {command:?} exited ({status}); the watchdog stops with it")]
    ChildExited {
        /// The program.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A forked function exited unsuccessfully before answering: 500.
    #[error("function exited with {status}")]
    FunctionFailed {
        /// How it ended.
        status: ExitStatus,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// The function did not answer within `exec_timeout` (or `X-Timeout`): 504.
    #[error("function timed out after {}", ferry_proto::duration::format(*.0))]
    ExecTimeout(Duration),
    /// The response was not ready within `write_timeout`: 504.
    #[error("no response within write_timeout ({})", ferry_proto::duration::format(*.0))]
    WriteTimeout(Duration),
    /// The http-mode upstream could not be reached or broke the exchange: 502.
    #[error("cannot reach the function's upstream {url}: {source}")]
    Upstream {
        /// The upstream URL requested.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The request body could not be read: 400.
    #[error("cannot read the request body: {0}")]
    RequestBody(#[source] BoxError),
    /// `max_inflight` requests are already running: 429.
    #[error("Concurrent request limit exceeded. Max concurrent requests: {0}")]
    LimitExceeded(usize),
    /// An I/O failure of the watchdog itself (fatal at start-up, 500 otherwise).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl WatchdogError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            WatchdogError::ExecTimeout(_) | WatchdogError::WriteTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            WatchdogError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            WatchdogError::RequestBody(_) => StatusCode::BAD_REQUEST,
            WatchdogError::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            WatchdogError::Config(_)
            | WatchdogError::Spawn { .. }
            | WatchdogError::ChildExited { .. }
            | WatchdogError::FunctionFailed { .. }
            | WatchdogError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response for this error. `elapsed` is the time since the request arrived.
    ///
    /// The limiter's 429 copies faas-middleware exactly (`Content-Type: text/plain`,
    /// `X-OpenFaaS-Internal: faas-middleware`, fixed body). Every other error carries
    /// `X-OpenFaaS-Internal: of-watchdog` and `X-Duration-Seconds`, so callers can tell a
    /// platform failure from the function's own 5xx.
    pub fn into_response(self, elapsed: Duration) -> Response<Body> {
        let status = self.status();
        if let WatchdogError::LimitExceeded(_) = self {
            return Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain")
                .header(headers::OPENFAAS_INTERNAL, headers::INTERNAL_LIMITER)
                .body(full(self.to_string()))
                .expect("static headers are valid");
        }
        let mut text = self.to_string();
        if let WatchdogError::FunctionFailed { stderr, .. } = &self {
            if !stderr.is_empty() {
                text.push('\n');
                text.push_str(stderr);
            }
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(headers::OPENFAAS_INTERNAL, headers::INTERNAL_WATCHDOG)
            .header(headers::DURATION_SECONDS, duration_header(elapsed))
            .body(full(text))
            .expect("static headers are valid")
    }
}

/// `X-Duration-Seconds` value: seconds with decimals, as of-watchdog prints them.
pub(crate) fn duration_header(elapsed: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.6}", elapsed.as_secs_f64())).expect("digits are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(resp: Response<Body>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn limiter_response_is_faas_middleware_compatible() {
        let resp = WatchdogError::LimitExceeded(3).into_response(Duration::ZERO);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.headers()["x-openfaas-internal"], "faas-middleware");
        assert_eq!(
            text(resp).await,
            "Concurrent request limit exceeded. Max concurrent requests: 3"
        );
    }

    #[tokio::test]
    async fn timeouts_are_504_and_marked_internal() {
        let resp = WatchdogError::ExecTimeout(Duration::from_secs(2))
            .into_response(Duration::from_millis(2001));
        assert_eq!(resp.status(), 504);
        assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
        assert_eq!(resp.headers()["x-duration-seconds"], "2.001000");
        assert_eq!(text(resp).await, "function timed out after 2s\n");
    }
}
