//! Basic auth of `/system/*` (`basic_auth=true`), as in OpenFaaS.
//!
//! At start the gateway reads `basic-auth-user` and `basic-auth-password` from
//! `secret_mount_path`, generating whichever is missing (see [`ferry_runtime::auth`]), and
//! logs whether auth is on and whether the credentials were read or generated, never their
//! values. Before the credentials it also writes `callback-signing-key` there if it is
//! missing, so that workers that share the folder (and wait for the credentials) sign their
//! callbacks. [`require`] then answers every request to a [`protected`] path that does not carry
//! them with `401`, `WWW-Authenticate: Basic realm="Restricted"` and a JSON message.
//! `/function/*`, `/async-function/*`, `/healthz` and `/metrics` stay open. The gateway sends
//! the same credentials to the provider on all of its calls (see `provider`).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_runtime::auth::{self, AuthConfig, Credentials, Origin};
use http::header::AUTHORIZATION;

use crate::Gateway;
use crate::error::GatewayError;

/// Whether `path` requires the credentials: `/system` and everything under it.
pub(crate) fn protected(path: &str) -> bool {
    path == "/system" || path.starts_with("/system/")
}

/// The credentials when `basic_auth` is on (generated if absent), `None` when it is off.
pub(crate) fn load(config: &AuthConfig) -> Result<Option<Credentials>, GatewayError> {
    if !config.enabled {
        tracing::info!("basic auth is off: /system/* is open (basic_auth=false)");
        return Ok(None);
    }
    let dir: &Path = &config.secret_mount_path;
    if auth::generate_signing_key_if_absent(dir)? {
        tracing::info!(
            "callback signing key generated in {}/{}",
            dir.display(),
            auth::CALLBACK_SIGNING_KEY_FILE
        );
    }
    let (credentials, origin) = auth::load_or_generate(dir)?;
    let origin = match origin {
        Origin::Read => "read from",
        Origin::Generated => "generated in",
    };
    tracing::info!(
        "basic auth is on for /system/*: credentials {origin} {}/{{{},{}}}",
        dir.display(),
        auth::USER_FILE,
        auth::PASSWORD_FILE
    );
    Ok(Some(credentials))
}

/// Middleware: `401` for a protected path without the right credentials.
pub(crate) async fn require(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(credentials) = &gateway.credentials {
        if protected(request.uri().path()) {
            let given = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            if !credentials.check(given) {
                return GatewayError::Unauthorized.into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests;
