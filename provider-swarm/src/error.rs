//! The provider's errors and their HTTP statuses, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_provider_core::ApiError;

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The function does not exist.
    #[error("function {0} not found")]
    NotFound(String),
    /// The function exists already (deploy with POST).
    #[error("function {0} already exists; use PUT /system/functions to update it")]
    AlreadyExists(String),
    /// The image is not on the engine (provider-swarm never pulls).
    #[error("image {image:?} is not available: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// The engine is not a swarm manager.
    #[error("the Docker engine is not a swarm manager: {0}")]
    NotSwarm(String),
    /// The Docker engine failed or could not be reached.
    #[error("docker engine error: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// `/system/*` without the basic-auth credentials (`basic_auth=true`).
    #[error("unauthorized: /system/* requires basic auth (user and password in secret_mount_path)")]
    Unauthorized,
    /// The basic-auth credentials could not be read (start-up).
    #[error("basic auth credentials: {0}")]
    Credentials(#[from] ferry_runtime::auth::AuthError),
    /// Serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl SwarmError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SwarmError::BadRequest(_) | SwarmError::ImageUnavailable { .. } => {
                StatusCode::BAD_REQUEST
            }
            SwarmError::NotFound(_) => StatusCode::NOT_FOUND,
            SwarmError::AlreadyExists(_) => StatusCode::CONFLICT,
            SwarmError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code,
                ..
            }) if *status_code < 500 => StatusCode::BAD_REQUEST,
            SwarmError::Docker(_) | SwarmError::NotSwarm(_) => StatusCode::BAD_GATEWAY,
            SwarmError::Unauthorized => StatusCode::UNAUTHORIZED,
            SwarmError::Credentials(_) | SwarmError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for SwarmError {
    fn into_response(self) -> Response {
        ferry_provider_core::error::error_response(self.status(), self.to_string())
    }
}

impl From<ApiError> for SwarmError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest(m) => SwarmError::BadRequest(m),
            ApiError::Unauthorized => SwarmError::Unauthorized,
            ApiError::Credentials(e) => SwarmError::Credentials(e),
        }
    }
}

impl From<ferry_proto::function::DeploymentError> for SwarmError {
    fn from(e: ferry_proto::function::DeploymentError) -> Self {
        SwarmError::BadRequest(e.to_string())
    }
}
