//! The provider's errors and their HTTP statuses, in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorBody;

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The function does not exist.
    #[error("function {0} not found")]
    NotFound(String),
    /// The function exists already (deploy with POST).
    #[error("function {0} already exists; use PUT /system/functions to update it")]
    AlreadyExists(String),
    /// `GET /system/logs?instance=` names no replica of the function.
    #[error("function {function} has no replica {instance:?}")]
    InstanceNotFound {
        /// The function, `name.namespace`.
        function: String,
        /// The instance asked for.
        instance: String,
    },
    /// The secret does not exist (`<name>` in namespace `<ns>`).
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
    /// `/system/*` without the basic-auth credentials (`basic_auth=true`).
    #[error("unauthorized: /system/* requires basic auth (user and password in secret_mount_path)")]
    Unauthorized,
    /// The basic-auth credentials could not be read (start-up).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
    /// Reading or writing the provider's state failed.
    #[error("state store error: {0}")]
    Store(#[from] std::io::Error),
}

impl ProviderError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProviderError::BadRequest(_) | ProviderError::ImageUnavailable { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProviderError::NotFound(_)
            | ProviderError::SecretNotFound(_)
            | ProviderError::NamespaceNotFound(_)
            | ProviderError::InstanceNotFound { .. } => StatusCode::NOT_FOUND,
            ProviderError::AlreadyExists(_)
            | ProviderError::SecretExists(_)
            | ProviderError::SecretInUse { .. }
            | ProviderError::NamespaceExists(_)
            | ProviderError::NamespaceInUse { .. } => StatusCode::CONFLICT,
            ProviderError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code,
                ..
            }) if *status_code < 500 => StatusCode::BAD_REQUEST,
            ProviderError::Docker(_) => StatusCode::BAD_GATEWAY,
            ProviderError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProviderError::Store(_) | ProviderError::Credentials(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ProviderError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request rejected");
        }
        let mut response = (status, Json(ErrorBody::new(self.to_string()))).into_response();
        if matches!(self, ProviderError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(ferry_runtime::auth::CHALLENGE),
            );
        }
        response
    }
}

impl From<ferry_provider_core::ApiError> for ProviderError {
    fn from(e: ferry_provider_core::ApiError) -> Self {
        use ferry_provider_core::ApiError;
        match e {
            ApiError::BadRequest(m) => ProviderError::BadRequest(m),
            ApiError::Unauthorized => ProviderError::Unauthorized,
            ApiError::Credentials(e) => ProviderError::Credentials(e),
        }
    }
}

impl From<ferry_proto::NameError> for ProviderError {
    fn from(e: ferry_proto::NameError) -> Self {
        ProviderError::BadRequest(e.to_string())
    }
}

impl From<ferry_proto::function::DeploymentError> for ProviderError {
    fn from(e: ferry_proto::function::DeploymentError) -> Self {
        ProviderError::BadRequest(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            ProviderError::BadRequest("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ProviderError::NotFound("f".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ProviderError::AlreadyExists("f".into()).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ProviderError::NamespaceNotFound("dev".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ProviderError::NamespaceExists("dev".into()).status(),
            StatusCode::CONFLICT
        );
        let in_use = ProviderError::NamespaceInUse {
            namespace: "dev".into(),
            reason: "r".into(),
        };
        assert_eq!(in_use.status(), StatusCode::CONFLICT);
        let image = ProviderError::ImageUnavailable {
            image: "i".into(),
            reason: "r".into(),
        };
        assert_eq!(image.status(), StatusCode::BAD_REQUEST);
        let engine = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert_eq!(
            ProviderError::Docker(engine).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
