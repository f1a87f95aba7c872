//! The gateway's errors and their HTTP statuses, in one place.
//!
//! Every error the gateway itself produces (as opposed to a function's own error response,
//! which is passed through untouched) answers with a JSON [`ErrorBody`] and
//! `X-OpenFaaS-Internal: proxy`, so callers and the queue-worker can tell platform failures
//! from function failures.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use ferry_proto::headers::{INTERNAL_PROXY, OPENFAAS_INTERNAL};
use ferry_proto::{ErrorBody, NameError};
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, StatusCode};

/// The second `WWW-Authenticate` of a `401`: API tokens are bearer tokens.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"Restricted\"";

/// Everything a request (or start-up) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// `/function/` or `/async-function/` without a name: no function (`404`, as OpenFaaS).
    #[error(
        "function not found: provide a function name in the request path, e.g. /function/figlet"
    )]
    MissingName,
    /// The name in the path is not `name` or `name.namespace` with DNS-label parts: no such
    /// function can exist (`404`, as OpenFaaS answers).
    #[error("function {name:?} not found: not a valid function name ({reason})")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: NameError,
    },
    /// `X-Callback-Url` cannot be used.
    #[error("invalid X-Callback-Url {url:?}: {reason}")]
    InvalidCallbackUrl {
        /// The header's value without user-info, query and fragment (it is logged).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `X-Callback-Url` points where callbacks may not go (`callback_allow`,
    /// `callback_deny`, the built-in denials).
    #[error("X-Callback-Url {url:?} not allowed: {source}")]
    CallbackRefused {
        /// The header's value.
        url: String,
        /// The policy's refusal.
        source: ferry_runtime::callback_guard::GuardError,
    },
    /// A request body is over its limit: `max_async_body`, `max_sync_body` or
    /// `max_request_body`, as its `Content-Length` says or once as many bytes arrived.
    #[error("request body too large: at most {limit} bytes are accepted here ({setting})")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The setting that sets it.
        setting: &'static str,
    },
    /// The queued message would not fit in a NATS message.
    #[error("request too large: {0}")]
    PayloadTooLarge(String),
    /// The request body could not be read.
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    /// A request body stalled: no bytes for `read_timeout`; or a sync call's body, read
    /// before the call so that it can be retried, was not complete within `upstream_timeout`.
    #[error("the request body did not arrive in time ({setting} {timeout:?})")]
    RequestBodyTimeout {
        /// The time it had.
        timeout: Duration,
        /// The setting that gave it.
        setting: &'static str,
    },
    /// `max_concurrent_requests` requests are being handled already.
    #[error("too many requests in flight (max_concurrent_requests {limit}), retry shortly")]
    Overloaded {
        /// `max_concurrent_requests`.
        limit: usize,
    },
    /// A call id (caller's `X-Call-Id` or in a path) that cannot be a call id.
    #[error(
        "invalid call id {0:?}: use 1-128 characters of A-Z a-z 0-9 - _ . = \
         (no leading, trailing or double dot)"
    )]
    InvalidCallId(String),
    /// `Idempotency-Key` cannot be used.
    #[error("invalid Idempotency-Key: {0}")]
    InvalidIdempotencyKey(&'static str),
    /// A query parameter is malformed or missing.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// No status record for the call id.
    #[error("call {0} not found (unknown, or its status record expired)")]
    CallNotFound(String),
    /// No dead letter for the call id.
    #[error("no dead letter for call {0}")]
    DeadLetterNotFound(String),
    /// The call is not in a state that allows the operation.
    #[error("{0}")]
    Conflict(String),
    /// No replica of the function could be chosen: unknown function (`404`), no ready
    /// replica or none ready in time (`503`), the provider failing (`502`).
    #[error(transparent)]
    Invoke(ferry_invoke::InvokeError),
    /// Connecting to, or talking to, the function's replica failed.
    #[error("cannot reach function {function}: {reason}")]
    Upstream {
        /// The function as addressed.
        function: String,
        /// What went wrong.
        reason: String,
    },
    /// The function did not answer within `upstream_timeout`.
    #[error("function {function} did not answer within {timeout:?}")]
    UpstreamTimeout {
        /// The function as addressed.
        function: String,
        /// `upstream_timeout`.
        timeout: Duration,
    },
    /// The provider could not be reached or answered something unusable.
    #[error("functions provider: {0}")]
    Provider(String),
    /// `GET /system/function-metrics` without `faas_prometheus_host`.
    #[error(
        "no Prometheus is configured: set faas_prometheus_host (and faas_prometheus_port) on \
         the gateway for a function's history; its current figures are on /metrics"
    )]
    NoPrometheus,
    /// Prometheus could not be reached or failed the query.
    #[error("Prometheus: {0}")]
    Prometheus(String),
    /// NATS JetStream did not store the async call.
    #[error("the call was not queued: {0}")]
    QueueUnavailable(String),
    /// NATS JetStream could not serve a call-status or dead-letter request.
    #[error("NATS JetStream unavailable: {0}")]
    Nats(String),
    /// `/system/*` without the basic-auth credentials or an API token (`basic_auth=true`).
    #[error(
        "unauthorized: /system/* requires basic auth (user and password in secret_mount_path) \
         or an API token (Authorization: Bearer <token>)"
    )]
    Unauthorized,
    /// An `Authorization` header that authenticates no one: wrong basic-auth credentials, an
    /// unknown or revoked token, another scheme, or more than one header.
    #[error("unauthorized: {0}")]
    BadCredentials(&'static str),
    /// A call to a function labelled `com.ferry.auth=required` without credentials.
    #[error(
        "unauthorized: function {0} requires an API token with the invoke scope \
         (Authorization: Bearer <token>; label com.ferry.auth=required)"
    )]
    FunctionAuthRequired(String),
    /// Valid credentials that do not allow this: a token without the scope, or not for the
    /// namespace.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A request the gateway cannot read the target of (a token's request naming an invalid
    /// namespace, a body that is not the expected JSON, a malformed token request).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// `POST /system/tokens` with a name in use.
    #[error("a token named {0:?} exists already; delete it first or choose another name")]
    TokenExists(String),
    /// No token has this name.
    #[error("no token named {0:?}")]
    TokenNotFound(String),
    /// `POST /system/tokens` with `basic_auth=false`.
    #[error(
        "API tokens need basic_auth=true: with auth off every route is open, and a token \
         created now would become valid once auth is turned on"
    )]
    TokensNeedAuth,
    /// The basic-auth credentials could not be read or generated (start-up).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
    /// No route matches.
    #[error("no such route: {0}")]
    RouteNotFound(String),
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
    /// The TLS certificate or key (`tls_cert_file`, `tls_key_file`) cannot be used: at
    /// start-up, or a changed pair that is not reloaded. Names the file, never quotes it.
    #[error("TLS: {0}")]
    Tls(String),
    /// Serving failed (start-up or the listener).
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
    /// The NATS client could not be created (e.g. a malformed `nats_url`).
    #[error("cannot connect to NATS: {0}")]
    NatsConnect(#[from] async_nats::ConnectError),
}

impl GatewayError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidCallbackUrl { .. }
            | GatewayError::CallbackRefused { .. }
            | GatewayError::BadBody(_)
            | GatewayError::InvalidCallId(_)
            | GatewayError::InvalidIdempotencyKey(_)
            | GatewayError::InvalidQuery(_)
            | GatewayError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::Invoke(e) => invoke_status(e),
            GatewayError::MissingName
            | GatewayError::InvalidName { .. }
            | GatewayError::RouteNotFound(_)
            | GatewayError::CallNotFound(_)
            | GatewayError::DeadLetterNotFound(_)
            | GatewayError::TokenNotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::Unauthorized
            | GatewayError::BadCredentials(_)
            | GatewayError::FunctionAuthRequired(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) | GatewayError::TokensNeedAuth => StatusCode::FORBIDDEN,
            GatewayError::RequestBodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::Conflict(_) | GatewayError::TokenExists(_) => StatusCode::CONFLICT,
            GatewayError::BodyTooLarge { .. } | GatewayError::PayloadTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            GatewayError::QueueUnavailable(_)
            | GatewayError::Nats(_)
            | GatewayError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream { .. }
            | GatewayError::Provider(_)
            | GatewayError::Prometheus(_) => StatusCode::BAD_GATEWAY,
            GatewayError::NoPrometheus => StatusCode::NOT_IMPLEMENTED,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_)
            | GatewayError::Io(_)
            | GatewayError::Tls(_)
            | GatewayError::NatsConnect(_)
            | GatewayError::Credentials(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// [`GatewayError::InvalidName`] for `name`.
    pub fn invalid_name(name: &str, reason: NameError) -> Self {
        GatewayError::InvalidName {
            name: name.to_string(),
            reason,
        }
    }
}

impl From<ferry_invoke::InvokeError> for GatewayError {
    fn from(e: ferry_invoke::InvokeError) -> Self {
        match e {
            ferry_invoke::InvokeError::InvalidName { name, reason } => {
                GatewayError::InvalidName { name, reason }
            }
            other => GatewayError::Invoke(other),
        }
    }
}

/// The status of a failure to choose a replica.
fn invoke_status(e: &ferry_invoke::InvokeError) -> StatusCode {
    use ferry_invoke::InvokeError as E;
    match e {
        E::InvalidName { .. } | E::FunctionNotFound(_) => StatusCode::NOT_FOUND,
        E::NoReadyReplica { .. } | E::NotReadyInTime { .. } => StatusCode::SERVICE_UNAVAILABLE,
        E::Provider(_) | E::ReplicasExhausted(_) => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        match status {
            StatusCode::INTERNAL_SERVER_ERROR => tracing::error!(error = %self, "request failed"),
            s if s.is_server_error() => tracing::warn!(error = %self, "request failed"),
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        let body = serde_json::to_vec(&ErrorBody::new(self.to_string()))
            .unwrap_or_else(|_| b"{\"message\":\"error\"}".to_vec());
        let mut response = Response::new(axum::body::Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static(OPENFAAS_INTERNAL),
            HeaderValue::from_static(INTERNAL_PROXY),
        );
        if matches!(
            self,
            GatewayError::QueueUnavailable(_)
                | GatewayError::Nats(_)
                | GatewayError::Overloaded { .. }
        ) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            // Basic first: clients that read one challenge see OpenFaaS' own.
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(ferry_runtime::auth::CHALLENGE),
            );
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(BEARER_CHALLENGE));
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as one scenario
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let f = || "echo".to_string();
        let cases = [
            (GatewayError::MissingName, 404),
            (
                GatewayError::InvalidName {
                    name: "A".into(),
                    reason: NameError::Invalid("A".into()),
                },
                404,
            ),
            (
                GatewayError::InvalidCallbackUrl {
                    url: "x".into(),
                    reason: "r",
                },
                400,
            ),
            (
                GatewayError::CallbackRefused {
                    url: "http://169.254.169.254/".into(),
                    source: ferry_runtime::callback_guard::GuardError::InvalidHost("x".into()),
                },
                400,
            ),
            (GatewayError::BadBody("reset".into()), 400),
            (
                GatewayError::RequestBodyTimeout {
                    timeout: Duration::from_secs(60),
                    setting: "read_timeout",
                },
                408,
            ),
            (GatewayError::Overloaded { limit: 1 }, 503),
            (GatewayError::InvalidCallId("a/b".into()), 400),
            (GatewayError::InvalidIdempotencyKey("empty"), 400),
            (GatewayError::InvalidQuery("limit".into()), 400),
            (
                GatewayError::Invoke(ferry_invoke::InvokeError::FunctionNotFound(f())),
                404,
            ),
            (GatewayError::RouteNotFound("/".into()), 404),
            (GatewayError::CallNotFound("c".into()), 404),
            (GatewayError::DeadLetterNotFound("c".into()), 404),
            (GatewayError::NoPrometheus, 501),
            (GatewayError::Prometheus("refused".into()), 502),
            (GatewayError::Conflict("running".into()), 409),
            (GatewayError::Unauthorized, 401),
            (
                GatewayError::BadCredentials("unknown or revoked API token"),
                401,
            ),
            (GatewayError::FunctionAuthRequired(f()), 401),
            (GatewayError::Forbidden("no deploy scope".into()), 403),
            (GatewayError::TokensNeedAuth, 403),
            (GatewayError::InvalidRequest("namespace".into()), 400),
            (GatewayError::TokenExists("ci".into()), 409),
            (GatewayError::TokenNotFound("ci".into()), 404),
            (GatewayError::Nats("down".into()), 503),
            (
                GatewayError::BodyTooLarge {
                    limit: 1,
                    setting: "max_sync_body",
                },
                413,
            ),
            (GatewayError::PayloadTooLarge("max_payload".into()), 413),
            (
                GatewayError::Invoke(ferry_invoke::InvokeError::NoReadyReplica {
                    function: f(),
                    replicas: 0,
                }),
                503,
            ),
            (
                GatewayError::Invoke(ferry_invoke::InvokeError::NotReadyInTime {
                    function: f(),
                    timeout: Duration::from_secs(30),
                    detail: "1 replica running, not ready".into(),
                }),
                503,
            ),
            (GatewayError::QueueUnavailable("down".into()), 503),
            (
                GatewayError::Upstream {
                    function: f(),
                    reason: "refused".into(),
                },
                502,
            ),
            (GatewayError::Provider("down".into()), 502),
            (
                GatewayError::UpstreamTimeout {
                    function: f(),
                    timeout: Duration::from_secs(1),
                },
                504,
            ),
            (GatewayError::Internal("bug".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    #[tokio::test]
    async fn responses_are_json_and_marked_internal() {
        let response = GatewayError::from(ferry_invoke::InvokeError::FunctionNotFound(
            "echo.dev".into(),
        ))
        .into_response();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[OPENFAAS_INTERNAL], "proxy");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.message, "function echo.dev not found");

        let response = GatewayError::QueueUnavailable("NATS is down".into()).into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let response = GatewayError::Overloaded { limit: 8 }.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");

        for error in [
            GatewayError::Unauthorized,
            GatewayError::BadCredentials("wrong"),
            GatewayError::FunctionAuthRequired("echo.openfaas-fn".into()),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), 401);
            let challenges: Vec<_> = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .collect();
            assert_eq!(
                challenges,
                ["Basic realm=\"Restricted\"", "Bearer realm=\"Restricted\""]
            );
        }
        let response = GatewayError::Forbidden("no".into()).into_response();
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
