//! `/function/{name}[.{ns}][/sub/path][?query]`: synchronous calls, proxied to a ready
//! replica of the function.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::routes::FUNCTION;
use http::{HeaderValue, Uri};
use tokio::time::Instant;

use crate::Gateway;
use crate::error::GatewayError;
use crate::headers::{self, CALL_ID, START_TIME};
use crate::path::FunctionPath;
use crate::proxy::{self, SendError};

/// Proxies one call. The response carries `X-Start-Time`, and `X-Call-Id` when the gateway
/// generated it; so do the gateway's own error responses.
pub(crate) async fn invoke(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    let client = proxy::client_addr(&req);
    let (call_id, generated) = headers::call_id(req.headers());
    let start = headers::start_time();
    let mut response = match call(&gateway, req, client, &call_id, generated, &start).await {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(call_id = call_id.to_str().unwrap_or_default(), %error, "call failed");
            }
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    if generated {
        headers.insert(CALL_ID, call_id);
    }
    headers.insert(START_TIME, start);
    response
}

async fn call(
    gateway: &Gateway,
    req: Request,
    client: Option<SocketAddr>,
    call_id: &HeaderValue,
    generated: bool,
    start: &HeaderValue,
) -> Result<Response, GatewayError> {
    let timeout = gateway.config.upstream_timeout;
    let deadline = Instant::now() + timeout;
    let (mut parts, body) = req.into_parts();
    let uri = std::mem::take(&mut parts.uri);
    let path = FunctionPath::parse(uri.path(), FUNCTION)?;
    let replica = gateway.endpoints.choose(path.function).await?;
    parts.uri = Uri::builder()
        .scheme(http::uri::Scheme::HTTP)
        .authority(replica.authority().clone())
        .path_and_query(path.upstream(uri.query())?)
        .build()
        .map_err(|e| GatewayError::Internal(format!("building the upstream URI: {e}")))?;
    proxy::prepare(&mut parts, client);
    if generated {
        parts.headers.insert(CALL_ID, call_id.clone());
    }
    parts.headers.insert(START_TIME, start.clone());

    let upstream = http::Request::from_parts(parts, body);
    match proxy::send(&gateway.client, upstream, deadline).await {
        Ok(response) => Ok(proxy::response(response, Some((deadline, timeout)))),
        Err(SendError::Timeout) => Err(GatewayError::UpstreamTimeout {
            function: path.function.to_string(),
            timeout,
        }),
        Err(SendError::Connect(reason)) => {
            replica.connect_failed();
            Err(GatewayError::Upstream {
                function: path.function.to_string(),
                reason: format!("replica {}: {reason}", replica.authority()),
            })
        }
        Err(SendError::Failed(reason)) => {
            replica.exchange_failed();
            Err(GatewayError::Upstream {
                function: path.function.to_string(),
                reason: format!("replica {}: {reason}", replica.authority()),
            })
        }
    }
}
