//! `/system/*`: the faas-provider API, forwarded to `functions_provider_url` unchanged
//! (method, path, query, headers minus hop-by-hop ones, body streamed both ways). With
//! `basic_auth` on, the caller's `Authorization` (checked by `auth::require` before this
//! runs) is replaced by the gateway's own credentials.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use tokio::time::Instant;

use crate::Gateway;
use crate::error::GatewayError;
use crate::proxy::{self, SendError};

/// Forwards one request to the provider. The provider's response, errors included, is
/// passed back as it is; only an unreachable provider is the gateway's error (`502`).
pub(crate) async fn forward(
    State(gateway): State<Arc<Gateway>>,
    req: Request,
) -> Result<Response, GatewayError> {
    let client = proxy::client_addr(&req);
    let (mut parts, body) = req.into_parts();
    let provider = &gateway.config.provider_url;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = provider
        .uri(path_and_query)
        .map_err(|e| GatewayError::Internal(format!("building the provider URI: {e}")))?;
    proxy::prepare(&mut parts, client);
    if let Some(authorization) = gateway.provider.authorization() {
        parts
            .headers
            .insert(http::header::AUTHORIZATION, authorization.clone());
    }
    let timeout = gateway.config.upstream_timeout;
    let upstream = http::Request::from_parts(parts, body);
    match proxy::send(&gateway.client, upstream, Instant::now() + timeout).await {
        Ok(response) => Ok(proxy::response(response, None, None)),
        Err(SendError::Timeout) => Err(GatewayError::Provider(format!(
            "{provider} did not answer within {timeout:?}"
        ))),
        Err(SendError::NotSent(reason) | SendError::Failed(reason)) => Err(GatewayError::Provider(
            format!("cannot reach {provider}: {reason}"),
        )),
    }
}
