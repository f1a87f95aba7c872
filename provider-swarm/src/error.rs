//! The provider's errors and their HTTP statuses, in one place. The errors both backends
//! share (the engine, images, basic auth, secrets, namespaces) are `ferry-provider-core`'s
//! [`ApiError`], held in [`SwarmError::Api`].

use axum::http::StatusCode;
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
    /// The engine is not a swarm manager.
    #[error("the Docker engine is not a swarm manager: {0}")]
    NotSwarm(String),
    /// What every backend can fail with, with its status.
    #[error(transparent)]
    Api(ApiError),
    /// Serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl SwarmError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SwarmError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SwarmError::NotFound(_) => StatusCode::NOT_FOUND,
            SwarmError::AlreadyExists(_) => StatusCode::CONFLICT,
            SwarmError::NotSwarm(_) => StatusCode::BAD_GATEWAY,
            SwarmError::Api(e) => e.status(),
            SwarmError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

ferry_provider_core::backend_error_conversions!(SwarmError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let image = SwarmError::from(ApiError::ImageUnavailable {
            image: "i".into(),
            reason: "r".into(),
        });
        assert_eq!(image.status(), StatusCode::BAD_REQUEST);
        let engine = bollard::errors::Error::DockerResponseServerError {
            status_code: 503,
            message: "m".into(),
        };
        assert_eq!(SwarmError::from(engine).status(), StatusCode::BAD_GATEWAY);
        let exists = SwarmError::from(ApiError::SecretExists("s".into()));
        assert_eq!(exists.status(), StatusCode::CONFLICT);
        assert_eq!(
            SwarmError::NotSwarm("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
