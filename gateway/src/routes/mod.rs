//! The gateway's routes.
//!
//! | route | handler |
//! |---|---|
//! | any `/function/{name}[.{ns}][/sub/path]` | [`invoke`]: proxied to a ready replica |
//! | any `/async-function/{name}[.{ns}][/sub/path]` | [`async_invoke`]: stored in JetStream, `202` |
//! | `GET`, `DELETE /system/async-calls/{call_id}` | [`async_calls`]: call status, cancellation |
//! | `/system/dead-letters[/...]` | [`dead_letters`]: list, inspect, redrive, delete |
//! | `GET /system/queues` | [`queues`]: each queue's depth |
//! | `GET /system/async-calls?function=` | [`async_calls`]: a function's recent calls |
//! | `GET /system/function-metrics?function=&range=` | [`function_metrics`]: a function's history, from Prometheus |
//! | `GET /system/functions`, `GET /system/function/{name}` | [`system`]: forwarded, `invocationCount` filled in |
//! | `GET /system/info` | [`system`]: the provider's info, the gateway's version and architecture |
//! | `GET`, `POST /system/tokens`, `DELETE /system/tokens/{name}` | [`tokens`]: API tokens (admin only) |
//! | any other `/system/*` | [`system`]: forwarded to the provider |
//! | `GET /healthz` | [`health`]: NATS and provider status |
//! | `GET /metrics` | [`metrics`]: Prometheus text, no authentication |
//! | `GET /`, `GET /ui/[file]` | [`ui`]: the web dashboard (`/` redirects to `/ui/`), static files, no authentication |
//! | anything else | `404` JSON |
//!
//! With `basic_auth` on, the `auth::require` layer authenticates every request and refuses
//! (`401`, `403`) what the caller may not do before any route runs (`access::rules` has the
//! table of what each route needs). Every route but `/healthz` and `/metrics` counts
//! toward `max_concurrent_requests` (tower's global concurrency limit, from the request until
//! its response starts); one past it is shed at once with `503` and `Retry-After: 1`, so a
//! flood cannot pile up waiting requests.

pub(crate) mod async_calls;
pub(crate) mod async_invoke;
pub(crate) mod dead_letters;
pub(crate) mod function_metrics;
pub(crate) mod health;
pub(crate) mod invoke;
pub(crate) mod metrics;
pub(crate) mod queues;
pub(crate) mod system;
pub(crate) mod tokens;
pub(crate) mod ui;

use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;

use crate::Gateway;
use crate::error::GatewayError;

/// All routes on `gateway`.
pub(crate) fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.max_concurrent_requests;
    let cap = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |error: BoxError| async move {
            shed(&error, limit)
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(limit));
    Router::new()
        .route("/function", any(invoke::invoke))
        .route("/function/", any(invoke::invoke))
        .route("/function/{*rest}", any(invoke::invoke))
        .route("/async-function", any(async_invoke::submit))
        .route("/async-function/", any(async_invoke::submit))
        .route("/async-function/{*rest}", any(async_invoke::submit))
        .route("/system/async-calls", get(async_calls::list))
        .route(
            "/system/async-calls/{call_id}",
            get(async_calls::show).delete(async_calls::cancel),
        )
        .route("/system/dead-letters", get(dead_letters::list))
        .route(
            "/system/dead-letters/redrive",
            post(dead_letters::redrive_all)
                .get(dead_letters::show_redrive)
                .delete(dead_letters::remove_redrive),
        )
        .route(
            "/system/dead-letters/{call_id}",
            get(dead_letters::show).delete(dead_letters::remove),
        )
        .route(
            "/system/dead-letters/{call_id}/redrive",
            post(dead_letters::redrive),
        )
        .route(
            ferry_proto::routes::SYSTEM_FUNCTIONS,
            get(system::list_functions).fallback(system::forward),
        )
        .route(
            "/system/function/{name}",
            get(system::function_status).fallback(system::forward),
        )
        .route(
            ferry_proto::routes::SYSTEM_INFO,
            get(system::info).fallback(system::forward),
        )
        .route("/system/queues", get(queues::list))
        .route("/system/function-metrics", get(function_metrics::history))
        .route("/system/tokens", get(tokens::list).post(tokens::create))
        .route("/system/tokens/{name}", delete(tokens::remove))
        .route("/system/{*rest}", any(system::forward))
        // Only the routes above are capped.
        .layer(cap)
        .route(ferry_proto::routes::HEALTHZ, get(health::healthz))
        .route(ferry_proto::routes::METRICS, get(metrics::render))
        .route("/", get(ui::root))
        .route("/ui", get(ui::root))
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            crate::auth::require,
        ))
        .with_state(gateway)
}

/// The answer to a request the concurrency cap refused.
fn shed(error: &BoxError, limit: usize) -> GatewayError {
    if error.is::<Overloaded>() {
        GatewayError::Overloaded { limit }
    } else {
        GatewayError::Internal(format!("concurrency limit: {error}"))
    }
}

async fn not_found(uri: Uri) -> GatewayError {
    GatewayError::RouteNotFound(uri.path().to_string())
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut response =
        GatewayError::RouteNotFound(format!("{method} {}", uri.path())).into_response();
    *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    response
}
