//! The faas-provider HTTP API (plus ferry's endpoints route and `/metrics`), mapped onto
//! [`Provider`].
//! `/system/namespaces` and `/system/namespace/{name}`, `/system/secrets` and `/system/logs` live
//! in [`crate::namespaces`], [`crate::secrets`] and [`crate::logs`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_proto::info::{ProviderInfo, VersionInfo};
use ferry_proto::{
    DeleteFunctionRequest, ErrorBody, FunctionDeployment, FunctionRef, ScaleServiceRequest,
};
use serde::de::DeserializeOwned;

use crate::error::ProviderError;
use crate::provider::Provider;

type Params = Query<HashMap<String, String>>;
type ApiResult<T> = Result<T, ProviderError>;

/// The provider's routes; with `credentials`, `/system/*` requires them (see
/// [`crate::auth`]).
pub fn router(
    provider: Arc<Provider>,
    credentials: Option<Arc<ferry_runtime::auth::Credentials>>,
) -> Router {
    let router = Router::new()
        .route(
            "/system/functions",
            get(list).post(deploy).put(update).delete(delete),
        )
        .route("/system/function/{name}", get(status))
        .route("/system/scale-function/{name}", post(scale))
        .route("/system/endpoints/{name}", get(endpoints))
        .route("/system/info", get(info))
        .merge(crate::namespaces::routes())
        .merge(crate::secrets::routes())
        .merge(crate::logs::routes())
        .route("/healthz", get(healthz))
        .route(ferry_proto::routes::METRICS, get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(provider);
    match credentials {
        Some(credentials) => router.layer(axum::middleware::from_fn(move |req, next| {
            crate::auth::require(credentials.clone(), req, next)
        })),
        None => router,
    }
}

async fn list(State(p): State<Arc<Provider>>, Query(q): Params) -> ApiResult<Response> {
    let ns = namespace_param(&q, None)?;
    Ok(Json(p.list(&ns).await?).into_response())
}

async fn deploy(State(p): State<Arc<Provider>>, body: Bytes) -> ApiResult<StatusCode> {
    let d: FunctionDeployment = parse_json(&body, "a function deployment")?;
    let f = p.deploy(d).await?;
    tracing::info!(function = %f, "deployed");
    Ok(StatusCode::ACCEPTED)
}

async fn update(State(p): State<Arc<Provider>>, body: Bytes) -> ApiResult<StatusCode> {
    let d: FunctionDeployment = parse_json(&body, "a function deployment")?;
    let f = p.update(d).await?;
    tracing::info!(function = %f, "updated");
    Ok(StatusCode::ACCEPTED)
}

async fn delete(
    State(p): State<Arc<Provider>>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: DeleteFunctionRequest = parse_json(&body, "{\"functionName\": ...}")?;
    if req.function_name.trim().is_empty() {
        return Err(ProviderError::BadRequest(
            "the \"functionName\" field is required".into(),
        ));
    }
    // faas-cli sends the namespace in the body, faasd reads it from the query: accept both.
    let ns = namespace_param(&q, Some(&req.namespace))?;
    let f = FunctionRef::resolve(&req.function_name, Some(&ns))?;
    p.delete(&f).await?;
    tracing::info!(function = %f, "deleted");
    Ok(StatusCode::ACCEPTED)
}

async fn status(
    State(p): State<Arc<Provider>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let f = function_ref(&name, &q, None)?;
    Ok(Json(p.status(&f).await?).into_response())
}

async fn scale(
    State(p): State<Arc<Provider>>,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: ScaleServiceRequest = parse_json(&body, "{\"serviceName\": ..., \"replicas\": N}")?;
    let f = function_ref(&name, &q, Some(&req.namespace))?;
    if !req.service_name.is_empty()
        && req.service_name != name
        && req.service_name != f.name.as_str()
    {
        return Err(ProviderError::BadRequest(format!(
            "serviceName {:?} in the body does not match {:?} in the path",
            req.service_name, name
        )));
    }
    let replicas = p.scale(&f, req.replicas).await?;
    tracing::info!(function = %f, asked = req.replicas, replicas, "scaled");
    Ok(StatusCode::ACCEPTED)
}

async fn endpoints(
    State(p): State<Arc<Provider>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let f = function_ref(&name, &q, None)?;
    Ok(Json(p.endpoints(&f).await?).into_response())
}

async fn info() -> Json<ProviderInfo> {
    Json(ProviderInfo {
        provider: "ferry-provider-docker".into(),
        orchestration: "docker".into(),
        version: VersionInfo {
            commit_message: String::new(),
            sha: option_env!("FERRY_GIT_SHA").unwrap_or("unknown").into(),
            release: env!("CARGO_PKG_VERSION").into(),
        },
    })
}

async fn healthz(State(p): State<Arc<Provider>>) -> Response {
    match p.engine.ping().await {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody::new(format!(
                "the Docker engine does not answer: {e}"
            ))),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the provider's Prometheus metrics (see [`crate::metrics`]).
async fn metrics(State(p): State<Arc<Provider>>) -> Response {
    match p.replica_counts().await {
        Ok(counts) => p.metrics.set_replicas(&counts),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count replicas"),
    }
    (
        [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        p.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    (StatusCode::NOT_FOUND, Json(ErrorBody::new("no such route")))
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> (StatusCode, Json<ErrorBody>) {
    let message = format!("method {method} is not allowed on {}", uri.path());
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody::new(message)),
    )
}

/// Parses a JSON body whatever its `Content-Type` (faas-cli does not always set one), with
/// an error that says what was expected and where parsing stopped.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], expected: &str) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ProviderError::BadRequest(format!(
            "the request body is empty; expected {expected} as JSON"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadRequest(format!("malformed JSON, expected {expected}: {e}")))
}

/// The namespace from `?namespace=`, else from the body, else the default; validated
/// ([`ferry_proto::name::request_namespace`], which the gateway's token checks use too).
pub(crate) fn namespace_param(
    q: &HashMap<String, String>,
    body: Option<&str>,
) -> ApiResult<String> {
    let query = q.get("namespace").map(String::as_str);
    Ok(ferry_proto::name::request_namespace(query, body)?.to_string())
}

/// The function of `name` with the namespace of `?namespace=`, else of the body
/// ([`ferry_proto::name::request_function`], which the gateway's token checks use too).
pub(crate) fn function_ref(
    name: &str,
    q: &HashMap<String, String>,
    body_ns: Option<&str>,
) -> ApiResult<FunctionRef> {
    let query = q.get("namespace").map(String::as_str);
    Ok(ferry_proto::name::request_function(name, query, body_ns)?)
}
