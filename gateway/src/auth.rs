//! Authentication and authorization of every request, with `basic_auth=true`.
//!
//! At start the gateway reads `basic-auth-user` and `basic-auth-password` from
//! `secret_mount_path`, generating whichever is missing (see [`ferry_runtime::auth`]), and
//! logs whether auth is on and whether the credentials were read or generated, never their
//! values. Before the credentials it also writes `callback-signing-key` there if it is
//! missing, so that workers that share the folder (and wait for the credentials) sign their
//! callbacks.
//!
//! [`require`] then runs before routing, on every request:
//!
//! 1. [`rules::rule`] says what the route needs (a pure function of method and raw path);
//!    `/healthz`, `/metrics` and unknown paths need nothing;
//! 2. the caller is authenticated ([`Access::authenticate`]: basic auth or the admin
//!    token = admin, another token = its grant);
//! 3. `/system/*`: `401` without valid credentials (with `WWW-Authenticate: Basic
//!    realm="Restricted"` and a Bearer challenge), `403` when the token lacks the scope, or
//!    does not cover a namespace the request names ([`target::namespaces`]; read only for
//!    tokens limited to some namespaces); routes acting on a stored call check its
//!    namespace in their handler, with the [`Access`] left in the request's extensions;
//! 4. `/function/*`, `/async-function/*`: open, as in OpenFaaS, unless the function is
//!    labelled `com.ferry.auth=required` (asked of the provider only when the caller is not
//!    already allowed to invoke in that namespace; cached `function_cache_ttl`): then `401`
//!    without credentials, `403` without `invoke` in its namespace. Ferry credentials (basic
//!    auth, a known token) are taken off the request before it goes to the function or into
//!    the queue; any other `Authorization` header reaches an open function untouched.
//!
//! With `basic_auth=false` nothing is checked (every request is [`Access::Open`]) and
//! `Authorization` headers pass through as before. The gateway sends its own credentials to
//! the provider on all of its calls (see `system` and `ferry_invoke`).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_proto::token::Scope;
use ferry_proto::{FunctionRef, Name};
use ferry_runtime::auth::{self, AuthConfig, Credentials, Origin};
use http::header::AUTHORIZATION;

use crate::Gateway;
use crate::access::Access;
use crate::access::rules::{self, Rule};
use crate::access::target::{self, Target};
use crate::error::GatewayError;
use crate::limits::BodyLimit;

/// The credentials when `basic_auth` is on (generated if absent), `None` when it is off.
pub(crate) fn load(config: &AuthConfig) -> Result<Option<Credentials>, GatewayError> {
    if !config.enabled {
        tracing::info!(
            "basic auth is off: /system/* is open, API tokens and com.ferry.auth=required \
             are not enforced (basic_auth=false)"
        );
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

/// Middleware: authenticates the request and lets it through only if its route allows the
/// caller (see the module docs), with its [`Access`] in the request's extensions.
pub(crate) async fn require(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(credentials) = &gateway.credentials else {
        // Only `/system` handlers read it; function calls stay free of the allocation.
        if rules::is_system(request.uri().path()) {
            request.extensions_mut().insert(Access::Open);
        }
        return next.run(request).await;
    };
    let scripted = request.headers().contains_key(X_REQUESTED_WITH);
    let mut response = match authorize(&gateway, credentials, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    if scripted && response.status() == http::StatusCode::UNAUTHORIZED {
        // A browser answers a challenge to a script's request with its own login prompt
        // (which blocks the request until someone types into it); scripts that say who they
        // are (the dashboard) get the 401 without it and ask for credentials themselves.
        response
            .headers_mut()
            .remove(http::header::WWW_AUTHENTICATE);
    }
    response
}

/// Sent by scripts in a browser (the dashboard): 401 answers then carry no challenge.
const X_REQUESTED_WITH: &str = "x-requested-with";

/// The request, allowed (and perhaps its body read into memory), or why not.
async fn authorize(
    gateway: &Gateway,
    credentials: &Credentials,
    mut request: Request,
) -> Result<Request, GatewayError> {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let rule = rules::rule(&method, uri.path());
    let access = match rule {
        Rule::Open => Access::Anonymous,
        _ => Access::authenticate(request.headers(), credentials, &gateway.tokens),
    };
    match rule {
        Rule::Open => {}
        Rule::Admin => access.demand_admin()?,
        Rule::PerCall(scope) => access.demand_scope(scope)?,
        Rule::Scoped(scope, target) => {
            request = scoped(gateway, &access, scope, target, request).await?;
        }
        Rule::Call(function) => {
            call(gateway, &access, function).await?;
            if access.is_credential() {
                request.headers_mut().remove(AUTHORIZATION);
            }
        }
    }
    if let Access::Token(grant) = &access {
        tracing::debug!(token = %grant.name, %method, path = uri.path(), "allowed by an API token");
    }
    if rules::is_system(uri.path()) {
        request.extensions_mut().insert(access);
    }
    Ok(request)
}

/// `scope` in every namespace the request names.
async fn scoped(
    gateway: &Gateway,
    access: &Access,
    scope: Scope,
    target: Target<'_>,
    request: Request,
) -> Result<Request, GatewayError> {
    if access.everywhere(scope) {
        return Ok(request);
    }
    access.demand_scope(scope)?;
    let config = &gateway.config;
    let limit = BodyLimit::new(
        config.max_request_body,
        "max_request_body",
        config.read_timeout,
    );
    let (namespaces, request) = target::namespaces(target, request, limit).await?;
    access.demand(scope, namespaces.as_deref())?;
    Ok(request)
}

/// A call of `function` (as in the path): allowed, unless it is labelled
/// `com.ferry.auth=required` and the caller may not invoke in its namespace. A name no
/// function can have is left to the route (`404`).
async fn call(gateway: &Gateway, access: &Access, function: &str) -> Result<(), GatewayError> {
    let Ok(f) = FunctionRef::parse(function, &Name::default_namespace()) else {
        return Ok(());
    };
    if access.allows(Scope::Invoke, &f.namespace) {
        return Ok(());
    }
    // Unknown functions and provider failures are answered here: never let a call through
    // without knowing the function's label.
    let info = gateway.invoker.functions.get(function).await?;
    if !info.value.auth_required {
        return Ok(());
    }
    match access {
        Access::Anonymous => Err(GatewayError::FunctionAuthRequired(f.to_string())),
        Access::Invalid(why) => Err(GatewayError::BadCredentials(why)),
        _ => access.demand(Scope::Invoke, Some(&[f.namespace])),
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as one scenario
mod tests;
