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
use std::time::Duration;

use ferry_proto::routes::FUNCTION;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Uri};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::Gateway;
use crate::error::GatewayError;
use crate::headers::{self, CALL_ID, START_TIME};
use crate::metrics::FunctionMetrics;
use crate::path::FunctionPath;
use ferry_invoke::client::{self, SendError};
use ferry_invoke::{Chosen, InvokeError};

use crate::limits::{BodyLimit, BodyWatch};
use crate::proxy;
use crate::replay::{self, Outgoing};

/// Proxies one call. The response carries `X-Start-Time`, and `X-Call-Id` when the gateway
/// generated it; so do the gateway's own error responses.
pub(crate) async fn invoke(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    let (call_id, generated) = headers::call_id(req.headers());
    let began = Instant::now();
    let mut call = Call {
        gateway: &gateway,
        client: proxy::client_addr(&req),
        call_id,
        generated,
        start: headers::start_time(),
        counted: None,
    };
    let mut response = match call.run(req).await {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                let call_id = call.call_id.to_str().unwrap_or_default();
                tracing::warn!(call_id, %error, "call failed");
            }
            error.into_response()
        }
    };
    if let Some(metrics) = call.counted {
        metrics.completed(response.status().as_u16(), began.elapsed());
    }
    let headers = response.headers_mut();
    if call.generated {
        headers.insert(CALL_ID, call.call_id);
    }
    headers.insert(START_TIME, call.start);
    response
}

/// One sync call: who sent it, its id and start time, and, once the function is known to
/// exist, its function's metrics.
struct Call<'a> {
    gateway: &'a Gateway,
    client: Option<SocketAddr>,
    call_id: HeaderValue,
    /// Whether the gateway made the call id up (it is then sent and answered).
    generated: bool,
    start: HeaderValue,
    counted: Option<Arc<FunctionMetrics>>,
}

impl Call<'_> {
    /// Picks a replica (holding the call while the function scales from zero), then sends
    /// the call to it, or to another one if it never reached it.
    async fn run(&mut self, req: Request) -> Result<Response, GatewayError> {
        let config = &self.gateway.config;
        let timeout = config.upstream_timeout;
        let mut deadline = Instant::now() + timeout;
        let (mut parts, body) = req.into_parts();
        let uri = std::mem::take(&mut parts.uri);
        let path = FunctionPath::parse(uri.path(), FUNCTION)?;
        let function = path.function;
        let path_and_query = path.upstream(uri.query())?;
        let limit = BodyLimit::new(config.max_sync_body, "max_sync_body", config.read_timeout);
        limit.check(&body)?;
        let (replica, held) = self.replica(function).await?;
        if held {
            // upstream_timeout starts after the hold.
            deadline = Instant::now() + timeout;
        }
        proxy::prepare(&mut parts, self.client);
        if self.generated {
            parts.headers.insert(CALL_ID, self.call_id.clone());
        }
        parts.headers.insert(START_TIME, self.start.clone());
        let (body, watch) = limit.guard(body);
        let outgoing = Outgoing::new(parts, body, config.max_retry_body, deadline, timeout)
            .await
            .map_err(|e| watch.or(e))?;
        let sending = Sending {
            gateway: self.gateway,
            function,
            path_and_query,
            outgoing,
            watch,
            deadline,
            timeout,
        };
        sending.to(replica).await
    }

    /// A ready replica of `function`, and whether the call was held for it (body unread)
    /// while the function scaled from zero. From the moment the function is known to exist,
    /// the call is counted.
    async fn replica(&mut self, function: &str) -> Result<(Chosen, bool), GatewayError> {
        let invoker = &self.gateway.invoker;
        let chosen = invoker.endpoints.choose(function).await;
        if matches!(chosen, Ok(_) | Err(InvokeError::NoReadyReplica { .. })) {
            self.counted = self.gateway.metrics.function(function);
            if let Some(metrics) = &self.counted {
                metrics.started();
            }
        }
        match chosen {
            Ok(replica) => Ok((replica, false)),
            Err(InvokeError::NoReadyReplica { .. }) if invoker.holds_calls() => {
                let (ready, _) = invoker.replica(function).await?;
                Ok((ready, true))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A call's request on its way to a replica.
struct Sending<'a> {
    gateway: &'a Gateway,
    function: &'a str,
    path_and_query: PathAndQuery,
    outgoing: Outgoing,
    watch: BodyWatch,
    deadline: Instant,
    timeout: Duration,
}

impl Sending<'_> {
    /// Sends the call to `replica`; when it never reached it (and its body can be sent
    /// again), to another ready replica, up to [`replay::MAX_ATTEMPTS`].
    async fn to(mut self, mut replica: Chosen) -> Result<Response, GatewayError> {
        // Replicas this call could not connect to; allocated only on a failure.
        let mut tried: Vec<Authority> = Vec::new();
        loop {
            let error = match self.send(&replica).await? {
                Ok(response) => {
                    let in_flight = replica.into_in_flight();
                    let deadline = Some((self.deadline, self.timeout));
                    return Ok(proxy::response(response, deadline, Some(in_flight)));
                }
                Err(error) => error,
            };
            let failure = self.failure(&replica, &error)?;
            replica.connect_failed();
            tried.push(replica.authority().clone());
            if !replay::may_retry(&error, &self.outgoing) || tried.len() >= replay::MAX_ATTEMPTS {
                return Err(failure);
            }
            let function = self.function;
            let invoker = &self.gateway.invoker;
            let (next, waited) = invoker.next_replica(function, &replica, &tried).await?;
            if waited {
                self.deadline = Instant::now() + self.timeout;
            }
            let Some(next) = next else {
                return Err(failure);
            };
            tracing::debug!(
                function,
                failed = %replica.authority(),
                next = %next.authority(),
                %error,
                "the call never reached the replica; sending it to another one"
            );
            replica = next;
        }
    }

    /// One exchange with `replica`: its answer, or why there is none.
    async fn send(
        &mut self,
        replica: &Chosen,
    ) -> Result<Result<http::Response<Incoming>, SendError>, GatewayError> {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(replica.authority().clone())
            .path_and_query(self.path_and_query.clone())
            .build()
            .map_err(|e| GatewayError::Internal(format!("building the upstream URI: {e}")))?;
        let upstream = self
            .outgoing
            .request(uri)
            .ok_or_else(|| GatewayError::Internal("a streamed call sent twice".into()))?;
        Ok(client::send(&self.gateway.invoker.client, upstream, self.deadline).await)
    }

    /// The error a failed exchange ends the call with (`Err`), unless the call never reached
    /// the replica: then the error to answer if no other replica takes it (`Ok`).
    fn failure(&self, replica: &Chosen, error: &SendError) -> Result<GatewayError, GatewayError> {
        if let Some(breach) = self.watch.error() {
            return Err(breach); // the caller's body broke a limit: not the replica's fault
        }
        if matches!(error, SendError::Timeout) {
            return Err(GatewayError::UpstreamTimeout {
                function: self.function.to_string(),
                timeout: self.timeout,
            });
        }
        let failure = GatewayError::Upstream {
            function: self.function.to_string(),
            reason: format!("replica {}: {error}", replica.authority()),
        };
        if !matches!(error, SendError::NotSent(_)) {
            replica.exchange_failed();
            return Err(failure);
        }
        Ok(failure)
    }
}

#[cfg(test)]
mod tests;
