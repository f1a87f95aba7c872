//! The errors of the shared API layer and their HTTP statuses, in one place.
//!
//! A backend's error enum implements `From<ApiError>`, mapping each variant to its own of
//! the same meaning (and so the same status and message).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorBody;

/// What request parsing, validation and authentication can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// `/system/*` without the basic-auth credentials (`basic_auth=true`).
    #[error("unauthorized: /system/* requires basic auth (user and password in secret_mount_path)")]
    Unauthorized,
    /// The basic-auth credentials could not be read (start-up).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Credentials(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON error answer every backend gives: `{"message": ...}` with `status`, and the
/// `WWW-Authenticate` challenge on `401`.
pub fn error_response(status: StatusCode, message: String) -> Response {
    if status.is_server_error() {
        tracing::error!(error = %message, "request failed");
    } else {
        tracing::debug!(error = %message, "request rejected");
    }
    let mut response = (status, Json(ErrorBody::new(message))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static(ferry_runtime::auth::CHALLENGE),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status(), self.to_string())
    }
}

impl From<ferry_proto::NameError> for ApiError {
    fn from(e: ferry_proto::NameError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<ferry_proto::function::DeploymentError> for ApiError {
    fn from(e: ferry_proto::function::DeploymentError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_challenge() {
        assert_eq!(
            ApiError::BadRequest("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        let r = ApiError::Unauthorized.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()
                .contains_key(axum::http::header::WWW_AUTHENTICATE)
        );
    }
}
