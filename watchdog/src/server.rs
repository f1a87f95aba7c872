//! The HTTP/1.1 server: accept loop, per-connection tasks, routing (`/_/health`,
//! `/_/ready` except in classic mode, everything else to the function), the `max_inflight`
//! limiter, request metrics, and the shutdown sequence.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::{headers, routes};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::body::{Body, Deadline, boxed, guarded};
use crate::config::{Config, Mode};
use crate::error::{WatchdogError, duration_header};
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::runner::{Runner, effective_timeout};

/// What every request handler shares.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) runner: Runner,
    pub(crate) health: Health,
    pub(crate) metrics: Arc<Metrics>,
    limiter: Option<Arc<Semaphore>>,
}

impl State {
    pub(crate) fn new(config: Config, runner: Runner) -> Self {
        let lock = (!config.suppress_lock).then(|| config.lock_path.clone());
        let limiter =
            (config.max_inflight > 0).then(|| Arc::new(Semaphore::new(config.max_inflight)));
        State {
            health: Health::new(lock),
            metrics: Arc::new(Metrics::new()),
            runner,
            limiter,
            config,
        }
    }

    /// True when `max_inflight` requests are running.
    pub(crate) fn at_capacity(&self) -> bool {
        self.limiter
            .as_ref()
            .is_some_and(|l| l.available_permits() == 0)
    }
}

/// Serves until `shutdown` resolves, then: reports unhealthy (503, lock file removed) while
/// still serving for `healthcheck_interval`; closes the listener and lets in-flight requests
/// finish for up to `write_timeout` (aborting the rest); stops the http-mode process.
///
/// Returns early with [`WatchdogError::ChildExited`] if the http-mode process ends by itself
/// before it was asked to.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WatchdogError> {
    let (stop_tx, stop) = watch::channel(false);
    let mut conns = JoinSet::new();

    let serving = async {
        accept_until(&listener, &state, &mut conns, &stop, shutdown).await?;
        let interval = state.config.healthcheck_interval;
        tracing::info!(
            healthcheck_interval = %ferry_proto::duration::format(interval),
            "shutdown requested: reporting unhealthy, still serving"
        );
        state.health.mark_stopping();
        accept_until(
            &listener,
            &state,
            &mut conns,
            &stop,
            tokio::time::sleep(interval),
        )
        .await
    };
    if let Err(error) = serving.await {
        state.health.mark_stopping();
        conns.shutdown().await;
        return Err(error);
    }
    drop(listener);

    let write_timeout = state.config.write_timeout;
    tracing::info!(
        in_flight = conns.len(),
        write_timeout = %ferry_proto::duration::format(write_timeout),
        "listener closed; draining connections"
    );
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(write_timeout, drain).await.is_err() {
        tracing::warn!(
            remaining = conns.len(),
            "connections still busy after write_timeout; closing them"
        );
        conns.shutdown().await;
    }
    state.runner.terminate().await;
    tracing::info!("watchdog stopped");
    Ok(())
}

/// Accepts connections until `until` resolves.
async fn accept_until(
    listener: &TcpListener,
    state: &Arc<State>,
    conns: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
    until: impl Future<Output = ()>,
) -> Result<(), WatchdogError> {
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => return Ok(()),
            error = state.runner.exited() => {
                tracing::error!(%error, "the function process ended");
                return Err(error);
            }
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(error) = done {
                    tracing::warn!(%error, "a connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_connection(stream, state.clone(), stop.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Serves one connection until the client closes it or shutdown asks it to finish.
async fn serve_connection(stream: TcpStream, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.read_timeout);
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Routes one request and logs it.
async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let call_id = if state.config.log_callid {
        req.headers()
            .get(headers::CALL_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    } else {
        None
    };
    let req = req.map(boxed);
    let classic = state.config.mode == Mode::Classic;
    let resp = match path.as_str() {
        routes::WATCHDOG_HEALTH => health::health(&state, req.method()).await,
        // The classic watchdog has no `/_/ready`: there it runs the function like any path.
        routes::WATCHDOG_READY if !classic => health::ready(&state, req).await,
        _ => {
            let tracker = state.metrics.track(&method);
            tracker.respond(invoke(&state, req, started).await)
        }
    };
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let call_id = call_id.as_deref();
    if status >= 500 || status == 429 {
        tracing::info!(%method, path, status, ms, call_id, "request");
    } else {
        tracing::debug!(%method, path, status, ms, call_id, "request");
    }
    resp
}

/// Hands a request to the function: limiter, timeouts, `X-Duration-Seconds`.
async fn invoke(state: &State, req: Request<Body>, started: Instant) -> Response<Body> {
    let permit = match &state.limiter {
        None => None,
        Some(limiter) => match limiter.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return WatchdogError::LimitExceeded(state.config.max_inflight)
                    .into_response(started.elapsed());
            }
        },
    };
    let timeout = effective_timeout(state.config.exec_timeout, req.headers());
    let write_timeout = state.config.write_timeout;
    let write_deadline = started + write_timeout;
    let result = tokio::time::timeout_at(write_deadline, state.runner.invoke(req, timeout))
        .await
        .unwrap_or(Err(WatchdogError::WriteTimeout(write_timeout)));
    match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.insert(
                headers::DURATION_SECONDS,
                duration_header(started.elapsed()),
            );
            let body = Deadline::new(body)
                .deadline(write_deadline, "write_timeout")
                .hold(permit);
            Response::from_parts(parts, guarded(body))
        }
        Err(error) => {
            tracing::info!(%error, "request failed");
            error.into_response(started.elapsed())
        }
    }
}
