//! The provider's errors and their HTTP statuses, in one place.

use axum::http::StatusCode;

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
    /// What every backend can fail with (the engine, images, basic auth, secrets,
    /// namespaces): `ferry-provider-core`'s errors, with their statuses.
    #[error(transparent)]
    Api(ferry_provider_core::ApiError),
    /// Reading or writing the provider's state failed.
    #[error("state store error: {0}")]
    Store(#[from] std::io::Error),
    /// `nats_url` cannot be used (malformed; a server that is down is not an error: the
    /// client keeps trying).
    #[error("nats_url {url:?}: {source}")]
    Nats {
        /// The URL, credentials hidden.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The listener failed.
    #[error("serving the API: {0}")]
    Serve(#[source] std::io::Error),
}

impl ProviderError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProviderError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProviderError::NotFound(_) | ProviderError::InstanceNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ProviderError::AlreadyExists(_) => StatusCode::CONFLICT,
            ProviderError::Api(e) => e.status(),
            ProviderError::Store(_) | ProviderError::Serve(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProviderError::Nats { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

ferry_provider_core::backend_error_conversions!(ProviderError);

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_provider_core::ApiError;

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
        let ns = ProviderError::from(ApiError::NamespaceExists("dev".into()));
        assert_eq!(ns.status(), StatusCode::CONFLICT);
        let engine = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert_eq!(
            ProviderError::from(engine).status(),
            StatusCode::BAD_GATEWAY
        );
        assert!(matches!(
            ProviderError::from(ApiError::BadRequest("b".into())),
            ProviderError::BadRequest(_)
        ));
    }
}
