//! `/function/{name}[.{ns}][/sub/path][?query]`: synchronous calls, proxied to the ready
//! replica of the function with the fewest calls in flight; sent to another one when the call
//! never reached the first and its body can be sent again (see [`crate::replay`]); held until
//! a replica is ready when there is none (see `ferry_invoke::scaling`). Calls to a function the
//! provider knows are counted in [`crate::metrics`] (started, then answered with their status
//! code and the time to the response headers).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::routes::FUNCTION;
use http::uri::Authority;
use http::{HeaderValue, Uri};
use tokio::time::Instant;

use crate::Gateway;
use crate::error::GatewayError;
use crate::headers::{self, CALL_ID, START_TIME};
use crate::metrics::FunctionMetrics;
use crate::path::FunctionPath;
use ferry_invoke::InvokeError;
use ferry_invoke::client::{self, SendError};

use crate::limits::BodyLimit;
use crate::proxy;
use crate::replay::{self, Outgoing};

/// Proxies one call. The response carries `X-Start-Time`, and `X-Call-Id` when the gateway
/// generated it; so do the gateway's own error responses.
pub(crate) async fn invoke(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    let client = proxy::client_addr(&req);
    let (call_id, generated) = headers::call_id(req.headers());
    let start = headers::start_time();
    let began = Instant::now();
    let mut counted = None;
    let called = call(
        &gateway,
        req,
        client,
        &call_id,
        generated,
        &start,
        &mut counted,
    )
    .await;
    let mut response = match called {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(call_id = call_id.to_str().unwrap_or_default(), %error, "call failed");
            }
            error.into_response()
        }
    };
    if let Some(metrics) = counted {
        metrics.completed(response.status().as_u16(), began.elapsed());
    }
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
    counted: &mut Option<Arc<FunctionMetrics>>,
) -> Result<Response, GatewayError> {
    let timeout = gateway.config.upstream_timeout;
    let mut deadline = Instant::now() + timeout;
    let (mut parts, body) = req.into_parts();
    let uri = std::mem::take(&mut parts.uri);
    let path = FunctionPath::parse(uri.path(), FUNCTION)?;
    let function = path.function;
    let path_and_query = path.upstream(uri.query())?;
    let config = &gateway.config;
    let limit = BodyLimit::new(config.max_sync_body, "max_sync_body", config.read_timeout);
    limit.check(&body)?;
    let chosen = gateway.invoker.endpoints.choose(function).await;
    if matches!(chosen, Ok(_) | Err(InvokeError::NoReadyReplica { .. })) {
        // The function exists: from here on the call is counted.
        *counted = gateway.metrics.function(function);
        if let Some(metrics) = counted {
            metrics.started();
        }
    }
    let mut replica = match chosen {
        Ok(replica) => replica,
        Err(InvokeError::NoReadyReplica { .. }) if gateway.invoker.holds_calls() => {
            // Held, body unread, until a replica is ready; upstream_timeout starts after.
            let (ready, _) = gateway.invoker.replica(function).await?;
            deadline = Instant::now() + timeout;
            ready
        }
        Err(error) => return Err(error.into()),
    };
    proxy::prepare(&mut parts, client);
    if generated {
        parts.headers.insert(CALL_ID, call_id.clone());
    }
    parts.headers.insert(START_TIME, start.clone());
    let (body, watch) = limit.guard(body);
    let mut outgoing = Outgoing::new(parts, body, config.max_retry_body, deadline, timeout)
        .await
        .map_err(|e| watch.or(e))?;

    // Replicas this call could not connect to; allocated only on a failure.
    let mut tried: Vec<Authority> = Vec::new();
    loop {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(replica.authority().clone())
            .path_and_query(path_and_query.clone())
            .build()
            .map_err(|e| GatewayError::Internal(format!("building the upstream URI: {e}")))?;
        let upstream = outgoing
            .request(uri)
            .ok_or_else(|| GatewayError::Internal("a streamed call sent twice".into()))?;
        let error = match client::send(&gateway.invoker.client, upstream, deadline).await {
            Ok(response) => {
                let in_flight = replica.into_in_flight();
                return Ok(proxy::response(
                    response,
                    Some((deadline, timeout)),
                    Some(in_flight),
                ));
            }
            Err(error) => error,
        };
        if let Some(breach) = watch.error() {
            return Err(breach); // the caller's body broke a limit: not the replica's fault
        }
        if matches!(error, SendError::Timeout) {
            return Err(GatewayError::UpstreamTimeout {
                function: function.to_string(),
                timeout,
            });
        }
        let failure = GatewayError::Upstream {
            function: function.to_string(),
            reason: format!("replica {}: {error}", replica.authority()),
        };
        if !matches!(error, SendError::NotSent(_)) {
            replica.exchange_failed();
            return Err(failure);
        }
        replica.connect_failed();
        tried.push(replica.authority().clone());
        if !replay::may_retry(&error, &outgoing) || tried.len() >= replay::MAX_ATTEMPTS {
            return Err(failure);
        }
        let (next, waited) = gateway
            .invoker
            .next_replica(function, &replica, &tried)
            .await?;
        if waited {
            deadline = Instant::now() + timeout;
        }
        match next {
            Some(next) => {
                tracing::debug!(
                    function,
                    failed = %replica.authority(),
                    next = %next.authority(),
                    %error,
                    "the call never reached the replica; sending it to another one"
                );
                replica = next;
            }
            None => return Err(failure),
        }
    }
}

#[cfg(test)]
mod tests;
