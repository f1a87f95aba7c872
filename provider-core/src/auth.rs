//! Basic auth of the provider API (`basic_auth=true`): every `/system/*` request must carry
//! the credentials in `basic-auth-user` and `basic-auth-password` of `secret_mount_path`,
//! else `401` with `WWW-Authenticate: Basic realm="Restricted"`. `/healthz` and `/metrics`
//! stay open.
//!
//! The provider only reads the files; it never writes them. The gateway generates them on
//! its first start (in compose the provider mounts the gateway's secrets volume read-only),
//! so at start a provider waits up to [`WAIT`] for them to appear, then fails (and is
//! restarted by compose). One writer means both services always end with the same
//! credentials.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_runtime::auth::{self, AuthConfig, Credentials};

use crate::error::ApiError;

/// How long a provider waits at start for the gateway to write the credentials.
pub const WAIT: Duration = Duration::from_secs(60);

/// Whether `path` requires the credentials: `/system` and everything under it.
pub fn protected(path: &str) -> bool {
    path == "/system" || path.starts_with("/system/")
}

/// The credentials when `basic_auth` is on (waiting for them), `None` when it is off. Logs
/// where they came from, never their values.
pub async fn load(config: &AuthConfig) -> Result<Option<Arc<Credentials>>, ApiError> {
    if !config.enabled {
        tracing::info!("basic auth is off: /system/* is open (basic_auth=false)");
        return Ok(None);
    }
    let dir = &config.secret_mount_path;
    if auth::load(dir).is_err() {
        tracing::info!(
            "waiting up to {WAIT:?} for the gateway to write {}/{{{},{}}}",
            dir.display(),
            auth::USER_FILE,
            auth::PASSWORD_FILE
        );
    }
    let credentials = auth::wait_and_load(dir, WAIT).await?;
    tracing::info!(
        "basic auth is on for /system/*: credentials read from {}",
        dir.display()
    );
    Ok(Some(Arc::new(credentials)))
}

/// Middleware: `401` for a protected path without the right credentials.
pub async fn require(credentials: Arc<Credentials>, request: Request, next: Next) -> Response {
    if protected(request.uri().path()) {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !credentials.check(given) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_system_paths_are_protected() {
        assert!(protected("/system/functions"));
        assert!(protected("/system"));
        assert!(!protected("/healthz"));
        assert!(!protected("/metrics"));
        assert!(!protected("/systems"));
    }

    #[tokio::test]
    async fn off_needs_no_files_and_on_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuthConfig {
            enabled: false,
            secret_mount_path: dir.path().to_path_buf(),
        };
        assert!(load(&config).await.unwrap().is_none());
        let (generated, _) = auth::load_or_generate(dir.path()).unwrap();
        config.enabled = true;
        let read = load(&config).await.unwrap().unwrap();
        assert_eq!(*read, generated);
    }
}
