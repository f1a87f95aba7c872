//! The errors of the shared API layer and their HTTP statuses, in one place.
//!
//! A backend's error enum holds an [`ApiError`] (its shared variants: bad requests, basic
//! auth, the engine, images, secrets and namespaces) next to its own, and answers with
//! [`ApiError::status`] for them, so both backends give the same status and message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorBody;

/// What request parsing, validation, authentication and the engine can fail with: the
/// errors every backend shares, with one message and one status each.
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
    /// The image cannot be used.
    #[error("image {image:?} is not available: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// The Docker engine failed or could not be reached.
    #[error("docker engine error: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// The secret does not exist (`<name> in namespace <ns>`).
    #[error("secret {0} not found")]
    SecretNotFound(String),
    /// The secret exists already (create with POST).
    #[error("secret {0} already exists; use PUT /system/secrets to update it")]
    SecretExists(String),
    /// The secret is named by deployed functions and cannot be deleted.
    #[error("secret {secret} is used by {functions}; remove it from them (or delete them) first")]
    SecretInUse {
        /// The secret.
        secret: String,
        /// The functions naming it, `name.namespace`, comma-separated.
        functions: String,
    },
    /// The namespace does not exist (see [`crate::namespaces`]).
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    /// The namespace exists already (create with POST).
    #[error(
        "namespace {0} already exists; use PUT /system/namespace/{0} to change its labels and annotations"
    )]
    NamespaceExists(String),
    /// The namespace cannot be deleted (the default one, or one still holding functions or
    /// secrets).
    #[error("namespace {namespace} cannot be deleted: {reason}")]
    NamespaceInUse {
        /// The namespace.
        namespace: String,
        /// Why, and what to do first.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::ImageUnavailable { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Credentials(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::SecretNotFound(_) | ApiError::NamespaceNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::SecretExists(_)
            | ApiError::SecretInUse { .. }
            | ApiError::NamespaceExists(_)
            | ApiError::NamespaceInUse { .. } => StatusCode::CONFLICT,
            // The engine refused the request (a bad name, a conflict): the client's fault.
            ApiError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code,
                ..
            }) if *status_code < 500 => StatusCode::BAD_REQUEST,
            ApiError::Docker(_) => StatusCode::BAD_GATEWAY,
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

/// The conversions and the response of a backend's error enum `$error`, which has the
/// variants `BadRequest(String)` and `Api(ApiError)` and a `status()`: an [`ApiError`]'s bad
/// request becomes the backend's own, the engine's, basic auth's, a name's and a
/// deployment's errors become the shared or bad-request variants, and the answer is
/// [`error_response`]. One definition for both providers.
#[macro_export]
macro_rules! backend_error_conversions {
    ($error:ident) => {
        impl ::axum::response::IntoResponse for $error {
            fn into_response(self) -> ::axum::response::Response {
                $crate::error::error_response(self.status(), self.to_string())
            }
        }

        impl From<$crate::ApiError> for $error {
            fn from(e: $crate::ApiError) -> Self {
                match e {
                    $crate::ApiError::BadRequest(m) => $error::BadRequest(m),
                    e => $error::Api(e),
                }
            }
        }

        impl From<::bollard::errors::Error> for $error {
            fn from(e: ::bollard::errors::Error) -> Self {
                $error::Api(e.into())
            }
        }

        impl From<::ferry_runtime::auth::AuthError> for $error {
            fn from(e: ::ferry_runtime::auth::AuthError) -> Self {
                $error::Api(e.into())
            }
        }

        impl From<::ferry_proto::NameError> for $error {
            fn from(e: ::ferry_proto::NameError) -> Self {
                $error::BadRequest(e.to_string())
            }
        }

        impl From<::ferry_proto::function::DeploymentError> for $error {
            fn from(e: ::ferry_proto::function::DeploymentError) -> Self {
                $error::BadRequest(e.to_string())
            }
        }
    };
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
        let image = ApiError::ImageUnavailable {
            image: "i".into(),
            reason: "r".into(),
        };
        assert_eq!(image.status(), StatusCode::BAD_REQUEST);
        let engine = |status_code| {
            ApiError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: "m".into(),
            })
        };
        assert_eq!(engine(500).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(engine(409).status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::SecretNotFound("s".into()).status(),
            StatusCode::NOT_FOUND
        );
        let in_use = ApiError::NamespaceInUse {
            namespace: "dev".into(),
            reason: "r".into(),
        };
        assert_eq!(in_use.status(), StatusCode::CONFLICT);
    }
}
