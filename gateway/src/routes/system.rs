//! `/system/*`: the faas-provider API, forwarded to `functions_provider_url` (method, path,
//! query, headers minus hop-by-hop ones, body streamed both ways, at most `max_request_body`
//! bytes: `413`). With `basic_auth` on, the
//! caller's `Authorization` (checked by `auth::require` before this runs) is replaced by the
//! gateway's own credentials. Three `GET`s are the gateway's own on top of the provider's
//! answer:
//!
//! - `GET /system/functions[?namespace=]` and `GET /system/function/{name}[?namespace=]`:
//!   the provider's answer with `invocationCount` of each function set from the gateway's
//!   counters ([`crate::metrics`], all status codes together; `0` for a function this gateway
//!   never called). A non-`200` answer is passed back as it is.
//! - `GET /system/info`: OpenFaaS' `GatewayInfo`, `{"provider": <the provider's
//!   /system/info, or null if it could not be read>, "version": {"sha", "release"},
//!   "arch"}`, `arch` as Go names it (`amd64`, `arm64`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_proto::FunctionRef;
use ferry_proto::info::{GatewayInfo, ProviderInfo, VersionInfo};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::time::Instant;

use crate::Gateway;
use crate::error::GatewayError;
use crate::limits::BodyLimit;
use ferry_invoke::client::{self, SendError};

use crate::proxy;

/// Largest provider answer the gateway rewrites (a list of many functions).
const MAX_REWRITTEN_BODY: usize = 16 * 1024 * 1024;

/// Forwards one request to the provider. The provider's response, errors included, is
/// passed back as it is; only an unreachable provider is the gateway's error (`502`).
pub(crate) async fn forward(
    State(gateway): State<Arc<Gateway>>,
    req: Request,
) -> Result<Response, GatewayError> {
    let response = send(&gateway, req).await?;
    Ok(proxy::response(response, None, None))
}

/// `GET /system/functions`: the provider's list with `invocationCount` filled in.
pub(crate) async fn list_functions(
    State(gateway): State<Arc<Gateway>>,
    req: Request,
) -> Result<Response, GatewayError> {
    with_counts(&gateway, req, |body, counts| {
        if let Value::Array(functions) = body {
            functions.iter_mut().for_each(|f| set_count(f, counts));
        }
    })
    .await
}

/// `GET /system/function/{name}`: the provider's status with `invocationCount` filled in.
pub(crate) async fn function_status(
    State(gateway): State<Arc<Gateway>>,
    req: Request,
) -> Result<Response, GatewayError> {
    with_counts(&gateway, req, set_count).await
}

/// `GET /system/info`: the provider's info, the gateway's version and architecture.
pub(crate) async fn info(
    State(gateway): State<Arc<Gateway>>,
    req: Request,
) -> Result<Json<GatewayInfo>, GatewayError> {
    let response = send(&gateway, req).await?;
    let provider = match response.status() {
        StatusCode::OK => match read(response.into_body()).await {
            Ok(body) => serde_json::from_slice::<ProviderInfo>(&body)
                .map_err(|e| tracing::warn!(error = %e, "the provider's /system/info"))
                .ok(),
            Err(error) => {
                tracing::warn!(%error, "reading the provider's /system/info");
                None
            }
        },
        status => {
            tracing::warn!(%status, "the provider's /system/info");
            None
        }
    };
    Ok(Json(GatewayInfo {
        provider,
        version: VersionInfo {
            commit_message: String::new(),
            sha: option_env!("FERRY_GIT_SHA").unwrap_or("unknown").into(),
            release: env!("CARGO_PKG_VERSION").into(),
        },
        arch: go_arch(std::env::consts::ARCH).into(),
    }))
}

/// Go's name of an architecture, as OpenFaaS reports it.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Forwards `req`; a `200` JSON answer is parsed, `edit`ed with the invocation counts per
/// `function_name` and sent back re-encoded; anything else is passed back as it is.
async fn with_counts(
    gateway: &Gateway,
    req: Request,
    edit: impl FnOnce(&mut Value, &HashMap<String, u64>),
) -> Result<Response, GatewayError> {
    let response = send(gateway, req).await?;
    if response.status() != StatusCode::OK {
        return Ok(proxy::response(response, None, None));
    }
    let (mut parts, body) = response.into_parts();
    let body = read(body).await?;
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| GatewayError::Provider(format!("unexpected answer: {e}")))?;
    edit(&mut value, &gateway.metrics.invocation_counts());
    let body = serde_json::to_vec(&value)
        .map_err(|e| GatewayError::Internal(format!("encoding the answer: {e}")))?;
    crate::headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(http::Response::from_parts(parts, Body::from(body)).into_response())
}

/// Sets `invocationCount` of one `FunctionStatus` object.
fn set_count(function: &mut Value, counts: &HashMap<String, u64>) {
    let Value::Object(fields) = function else {
        return;
    };
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = fields.get("namespace").and_then(Value::as_str);
    let count = FunctionRef::resolve(name, namespace)
        .ok()
        .and_then(|f| counts.get(&f.to_string()).copied())
        .unwrap_or(0);
    fields.insert("invocationCount".into(), Value::from(count));
}

/// Sends `req` to the provider, unchanged but for hop-by-hop headers; its body within
/// `max_request_body` and `read_timeout` ([`BodyLimit`]: `413` up front, nothing sent, when
/// `Content-Length` is over it).
async fn send(gateway: &Gateway, req: Request) -> Result<http::Response<Incoming>, GatewayError> {
    let client = proxy::client_addr(&req);
    let (mut parts, body) = req.into_parts();
    let config = &gateway.config;
    let limit = BodyLimit::new(
        config.max_request_body,
        "max_request_body",
        config.read_timeout,
    );
    limit.check(&body)?;
    let (body, watch) = limit.guard(body);
    let provider = &config.invoke.provider_url;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = provider
        .uri(path_and_query)
        .map_err(|e| GatewayError::Internal(format!("building the provider URI: {e}")))?;
    proxy::prepare(&mut parts, client);
    if let Some(authorization) = gateway.invoker.provider.authorization() {
        parts
            .headers
            .insert(http::header::AUTHORIZATION, authorization.clone());
    }
    let timeout = gateway.config.upstream_timeout;
    let upstream = http::Request::from_parts(parts, body);
    let sent = client::send(&gateway.invoker.client, upstream, Instant::now() + timeout).await;
    sent.map_err(|error| {
        watch.or(match error {
            SendError::Timeout => {
                GatewayError::Provider(format!("{provider} did not answer within {timeout:?}"))
            }
            SendError::NotSent(reason) | SendError::Failed(reason) => {
                GatewayError::Provider(format!("cannot reach {provider}: {reason}"))
            }
        })
    })
}

/// The whole body of a provider answer (at most [`MAX_REWRITTEN_BODY`]).
async fn read(body: Incoming) -> Result<Bytes, GatewayError> {
    Limited::new(body, MAX_REWRITTEN_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| GatewayError::Provider(format!("reading its answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_matched_on_name_and_namespace() {
        let counts: HashMap<String, u64> =
            [("echo.openfaas-fn".into(), 3), ("echo.dev".into(), 5)].into();
        let mut list = serde_json::json!([
            {"name": "echo", "namespace": "openfaas-fn", "invocationCount": 1},
            {"name": "echo", "namespace": "dev"},
            {"name": "echo"},
            {"name": "other", "namespace": "dev"},
        ]);
        for f in list.as_array_mut().unwrap() {
            set_count(f, &counts);
        }
        let got: Vec<u64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["invocationCount"].as_u64().unwrap())
            .collect();
        assert_eq!(got, [3, 5, 3, 0]);
        assert_eq!(go_arch("x86_64"), "amd64");
    }
}
