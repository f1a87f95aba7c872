//! The faas-provider HTTP API over a [`Backend`]: routes, JSON parsing, namespace and name
//! validation, fallbacks. Backends add their own routes to [`routes`] and call [`finish`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_proto::info::ProviderInfo;
use ferry_proto::{
    DeleteFunctionRequest, ErrorBody, FunctionDeployment, FunctionEndpoints, FunctionRef,
    FunctionStatus, ScaleServiceRequest, Wake,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

type Params = Query<HashMap<String, String>>;

/// A place to run functions: what the shared API calls.
pub trait Backend: Send + Sync + Sized + 'static {
    /// The backend's error enum; answers with its own statuses.
    type Error: IntoResponse + From<ApiError> + std::fmt::Display + Send + 'static;

    /// `POST /system/functions`: creates the function (already exists: a conflict).
    fn deploy(
        self: &Arc<Self>,
        d: FunctionDeployment,
    ) -> impl Future<Output = Result<FunctionRef, Self::Error>> + Send;
    /// `PUT /system/functions`: replaces the function's spec (unknown: not found).
    fn update(
        self: &Arc<Self>,
        d: FunctionDeployment,
    ) -> impl Future<Output = Result<FunctionRef, Self::Error>> + Send;
    /// `DELETE /system/functions`.
    fn delete(
        self: &Arc<Self>,
        f: &FunctionRef,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// `GET /system/function/{name}`.
    fn status(
        self: &Arc<Self>,
        f: &FunctionRef,
    ) -> impl Future<Output = Result<FunctionStatus, Self::Error>> + Send;
    /// `GET /system/functions?namespace=`.
    fn list(
        self: &Arc<Self>,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<FunctionStatus>, Self::Error>> + Send;
    /// `POST /system/scale-function/{name}`; returns the replicas set (within the
    /// function's bounds) and, coming back from zero, how. With `from_zero` (ferry's
    /// `fromZero`), only a function at zero desired replicas is scaled, and to at least its
    /// `com.openfaas.scale.min`.
    fn scale(
        self: &Arc<Self>,
        f: &FunctionRef,
        replicas: u64,
        from_zero: bool,
    ) -> impl Future<Output = Result<Scaled, Self::Error>> + Send;
    /// `GET /system/endpoints/{name}`: the replicas' addresses and readiness.
    fn endpoints(
        self: &Arc<Self>,
        f: &FunctionRef,
    ) -> impl Future<Output = Result<FunctionEndpoints, Self::Error>> + Send;
    /// `GET /system/info`.
    fn info(&self) -> ProviderInfo;
    /// `GET /healthz`: `Err(why)` answers `503` with `why`.
    fn health(self: &Arc<Self>) -> impl Future<Output = Result<(), String>> + Send;
    /// `GET /metrics`: Prometheus text.
    fn metrics(self: &Arc<Self>) -> impl Future<Output = Vec<u8>> + Send;
}

/// What a scale call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    /// The desired replicas now.
    pub replicas: u64,
    /// How a replica came back, when the call scaled the function up from zero (sent as
    /// `X-Ferry-Wake`).
    pub wake: Option<Wake>,
    /// The replica brought back, when its address is known at once (a thawed one): the
    /// answer's body, so that a gateway holding calls probes it without listing first.
    pub endpoints: Option<FunctionEndpoints>,
}

/// The shared routes, with the backend as state; add the backend's own and [`finish`].
pub fn routes<B: Backend>() -> Router<Arc<B>> {
    Router::new()
        .route(
            "/system/functions",
            get(list::<B>)
                .post(deploy::<B>)
                .put(update::<B>)
                .delete(delete::<B>),
        )
        .route("/system/function/{name}", get(status::<B>))
        .route("/system/scale-function/{name}", post(scale::<B>))
        .route("/system/endpoints/{name}", get(endpoints::<B>))
        .route("/system/info", get(info::<B>))
        .route("/healthz", get(healthz::<B>))
        .route(ferry_proto::routes::METRICS, get(metrics::<B>))
}

/// JSON answers for unknown routes and wrong methods, the backend as state, and with
/// `credentials` basic auth on `/system/*` (see [`crate::auth`]).
pub fn finish<B: Backend>(
    routes: Router<Arc<B>>,
    backend: Arc<B>,
    credentials: Option<Arc<ferry_runtime::auth::Credentials>>,
) -> Router {
    let router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(backend);
    match credentials {
        Some(credentials) => router.layer(axum::middleware::from_fn(move |req, next| {
            crate::auth::require(credentials.clone(), req, next)
        })),
        None => router,
    }
}

async fn list<B: Backend>(State(b): State<Arc<B>>, Query(q): Params) -> Result<Response, B::Error> {
    let ns = namespace_param(&q, None)?;
    Ok(Json(b.list(&ns).await?).into_response())
}

async fn deploy<B: Backend>(State(b): State<Arc<B>>, body: Bytes) -> Result<StatusCode, B::Error> {
    let d: FunctionDeployment = parse_json(&body, "a function deployment")?;
    let f = b.deploy(d).await?;
    tracing::info!(function = %f, "deployed");
    Ok(StatusCode::ACCEPTED)
}

async fn update<B: Backend>(State(b): State<Arc<B>>, body: Bytes) -> Result<StatusCode, B::Error> {
    let d: FunctionDeployment = parse_json(&body, "a function deployment")?;
    let f = b.update(d).await?;
    tracing::info!(function = %f, "updated");
    Ok(StatusCode::ACCEPTED)
}

async fn delete<B: Backend>(
    State(b): State<Arc<B>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let req: DeleteFunctionRequest = parse_json(&body, "{\"functionName\": ...}")?;
    if req.function_name.trim().is_empty() {
        let e = ApiError::BadRequest("the \"functionName\" field is required".into());
        return Err(e.into());
    }
    // faas-cli sends the namespace in the body, faasd reads it from the query: accept both.
    let ns = namespace_param(&q, Some(&req.namespace))?;
    let f = FunctionRef::resolve(&req.function_name, Some(&ns)).map_err(ApiError::from)?;
    b.delete(&f).await?;
    tracing::info!(function = %f, "deleted");
    Ok(StatusCode::ACCEPTED)
}

async fn status<B: Backend>(
    State(b): State<Arc<B>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, B::Error> {
    let f = function_ref(&name, &q, None)?;
    Ok(Json(b.status(&f).await?).into_response())
}

async fn scale<B: Backend>(
    State(b): State<Arc<B>>,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, B::Error> {
    let req: ScaleServiceRequest = parse_json(&body, "{\"serviceName\": ..., \"replicas\": N}")?;
    let f = function_ref(&name, &q, Some(&req.namespace))?;
    if !req.service_name.is_empty()
        && req.service_name != name
        && req.service_name != f.name.as_str()
    {
        let e = ApiError::BadRequest(format!(
            "serviceName {:?} in the body does not match {:?} in the path",
            req.service_name, name
        ));
        return Err(e.into());
    }
    let scaled = b.scale(&f, req.replicas, req.from_zero).await?;
    let wake = scaled.wake.map(Wake::as_str);
    tracing::info!(function = %f, asked = req.replicas, from_zero = req.from_zero,
        replicas = scaled.replicas, wake, "scaled");
    let mut response = match scaled.endpoints {
        Some(endpoints) => (StatusCode::ACCEPTED, Json(endpoints)).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    };
    if let Some(wake) = wake {
        response
            .headers_mut()
            .insert(Wake::HEADER, axum::http::HeaderValue::from_static(wake));
    }
    Ok(response)
}

async fn endpoints<B: Backend>(
    State(b): State<Arc<B>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, B::Error> {
    let f = function_ref(&name, &q, None)?;
    Ok(Json(b.endpoints(&f).await?).into_response())
}

async fn info<B: Backend>(State(b): State<Arc<B>>) -> Json<ProviderInfo> {
    Json(b.info())
}

async fn healthz<B: Backend>(State(b): State<Arc<B>>) -> Response {
    match b.health().await {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorBody::new(why))).into_response(),
    }
}

/// `GET /metrics`: the backend's Prometheus text.
async fn metrics<B: Backend>(State(b): State<Arc<B>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        b.metrics().await,
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
pub fn parse_json<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "the request body is empty; expected {expected} as JSON"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON, expected {expected}: {e}")))
}

/// The namespace from `?namespace=`, else from the body, else the default; validated
/// ([`ferry_proto::name::request_namespace`], which the gateway's token checks use too).
pub fn namespace_param(
    q: &HashMap<String, String>,
    body: Option<&str>,
) -> Result<String, ApiError> {
    let query = q.get("namespace").map(String::as_str);
    Ok(ferry_proto::name::request_namespace(query, body)?.to_string())
}

/// The function of `name` with the namespace of `?namespace=`, else of the body
/// ([`ferry_proto::name::request_function`], which the gateway's token checks use too).
pub fn function_ref(
    name: &str,
    q: &HashMap<String, String>,
    body_ns: Option<&str>,
) -> Result<FunctionRef, ApiError> {
    let query = q.get("namespace").map(String::as_str);
    Ok(ferry_proto::name::request_function(name, query, body_ns)?)
}
