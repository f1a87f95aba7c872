//! Prometheus metrics, as of-watchdog exposes them: text format at `GET /metrics` on the
//! metrics port (`metrics_port`, 8081), a listener of its own so that scraping never counts as
//! a function request.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `code`, `method` |
//! | `http_request_duration_seconds` | histogram (Prometheus default buckets) | `code`, `method` |
//! | `http_requests_in_flight` | gauge | |
//!
//! Only function requests count: `/_/health` and `/_/ready` (the platform's probes) do not.
//! `method` is lower case and `code` the status number, as Go's `promhttp` writes them. A
//! request is in flight from the moment it arrives until its response body has been sent
//! (or the client went away); it is counted, with its duration, when it ends. A request whose
//! client left before any response existed is only taken out of the in-flight gauge.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use tokio::net::TcpListener;

use crate::body::{Body, Deadline, full, guarded};

/// The watchdog's metrics, in a registry of their own.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Function requests, by status and method.",
            ),
            &["code", "method"],
        )
        .expect("a valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Seconds from a function request's arrival to the end of its response.",
            ),
            &["code", "method"],
        )
        .expect("a valid metric");
        let in_flight = IntGauge::new("http_requests_in_flight", "Function requests being served.")
            .expect("a valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
        ] {
            registry
                .register(metric)
                .expect("registering a metric once");
        }
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
        }
    }

    /// Starts counting a function request: in flight until the returned tracker is dropped.
    pub(crate) fn track(self: &Arc<Self>, method: &Method) -> Tracker {
        self.in_flight.inc();
        Tracker {
            metrics: self.clone(),
            method: method.as_str().to_ascii_lowercase(),
            started: Instant::now(),
            code: None,
        }
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics into memory");
        out
    }
}

/// One function request being served.
pub(crate) struct Tracker {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
    code: Option<StatusCode>,
}

impl Tracker {
    /// Records the response's status and keeps the request in flight until its body has been
    /// sent.
    pub(crate) fn respond(mut self, resp: Response<Body>) -> Response<Body> {
        self.code = Some(resp.status());
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, guarded(Deadline::new(body).hold(self)))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        if let Some(code) = self.code {
            let labels = [code.as_str(), self.method.as_str()];
            self.metrics.requests.with_label_values(&labels).inc();
            self.metrics
                .duration
                .with_label_values(&labels)
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&metrics, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(metrics: &Metrics, req: &Request<B>) -> Response<Body> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, ferry_proto::routes::METRICS) => (
            StatusCode::OK,
            prometheus::TEXT_FORMAT,
            full(metrics.render()),
        ),
        (_, ferry_proto::routes::METRICS) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            full("method not allowed"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            full("not found; metrics are at /metrics"),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .expect("static headers are valid")
}
