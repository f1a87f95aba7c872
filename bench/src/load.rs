//! The load generator: keep-alive HTTP/1 connections from this process, a closed loop (a
//! fixed number of callers, each sending its next request when the last one is answered) and
//! an open loop (requests due at a constant rate, sent over a fixed set of connections,
//! latency measured from each request's *intended* send time, so a slow answer cannot hide
//! the queue behind it). A request not answered within 30 s counts as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stats::{self, Timeline};

/// A pooled keep-alive HTTP/1 client (`TCP_NODELAY`).
pub type Client = HyperClient<HttpConnector, Full<Bytes>>;

/// A new [`Client`].
pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// The request every caller sends.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Method.
    pub method: Method,
    /// Full URL, `http://127.0.0.1:<port>/path`.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// The status that counts as success.
    pub expect: u16,
    /// When set, each request gets `X-Call-Id: <prefix>-<index>`.
    pub call_id_prefix: Option<String>,
}

impl Spec {
    /// `GET url` expecting 200.
    pub fn get(url: String) -> Spec {
        Spec {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
            expect: 200,
            call_id_prefix: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Spec {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends request number `index`; `Ok(())` when it was answered with the expected status
    /// and its whole body was read.
    pub async fn send(&self, client: &Client, index: u64) -> Result<(), String> {
        let mut builder = hyper::Request::builder()
            .method(self.method.clone())
            .uri(&self.url);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        if let Some(prefix) = &self.call_id_prefix {
            builder = builder.header("x-call-id", format!("{prefix}-{index}"));
        }
        let request = builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if status == self.expect {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            Err(format!("status {status}: {text}"))
        }
    }
}

/// What one run measured.
#[derive(Debug)]
pub struct Run {
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// Latency of successful requests, in µs.
    pub latency: Histogram<u64>,
    /// Successful answers over time.
    pub timeline: Timeline,
    /// Indices of the successful requests (open loop only).
    pub ok_indices: Vec<u64>,
}

impl Run {
    fn new() -> Run {
        Run {
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency: stats::histogram(),
            timeline: Timeline::default(),
            ok_indices: Vec::new(),
        }
    }

    fn absorb(&mut self, other: Run) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        self.timeline.merge(&other.timeline);
        self.ok_indices.extend(other.ok_indices);
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency quantile `q` in µs.
    pub fn quantile_us(&self, q: f64) -> f64 {
        stats::quantile_us(&self.latency, q)
    }

    /// `n ok, e errors, r /s, p50 … µs, p99 … µs` for the report.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ok in {:.2} s = {:.0} /s, p50 {:.0} µs, p99 {:.0} µs",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.quantile_us(0.5),
            self.quantile_us(0.99)
        );
        if self.errors > 0 {
            s.push_str(&format!(
                ", {} errors (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        s
    }
}

/// Closed loop: `concurrency` callers send `spec` back to back until `duration` has passed
/// or `limit` requests were sent.
pub async fn closed_loop(
    client: &Client,
    spec: &Spec,
    concurrency: usize,
    duration: Duration,
    limit: Option<u64>,
) -> Run {
    let start = Instant::now();
    let end = start + duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let (client, spec, next) = (client.clone(), spec.clone(), next.clone());
        callers.push(tokio::spawn(async move {
            let mut run = Run::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= end || limit.is_some_and(|l| index >= l) {
                    break;
                }
                let sent = Instant::now();
                let result = tokio::time::timeout(REQUEST_TIMEOUT, spec.send(&client, index))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 30 s".to_string()));
                match result {
                    Ok(()) => {
                        let done = Instant::now();
                        run.ok += 1;
                        stats::record(&mut run.latency, done - sent);
                        run.timeline.add(done - start);
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::new();
    for caller in callers {
        total.absorb(caller.await.expect("a load caller panicked"));
    }
    total.elapsed = start.elapsed();
    total
}

/// Connections of an open loop: enough for twice P1's callers, and a bound, so an overload
/// shows as queueing in the generator (counted: latency runs from the intended send time)
/// rather than as thousands of new connections.
pub const OPEN_LOOP_CONNECTIONS: usize = 64;

/// Longest wait for one answer before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Open loop: request `i` is due at `start + i / rate` for `duration`. A plain thread keeps the
/// schedule (tokio's timer has millisecond granularity) and hands each due request to
/// [`OPEN_LOOP_CONNECTIONS`] senders; a request's latency counts from its due time, so time
/// spent waiting for a free sender counts too (no coordinated omission). Waits for every
/// answer (at most `duration` + 60 s).
pub async fn open_loop(client: &Client, spec: &Spec, rate: f64, duration: Duration) -> Run {
    let count = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let start = Instant::now() + Duration::from_millis(20);
    let (due_tx, due_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let due_rx = Arc::new(tokio::sync::Mutex::new(due_rx));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..OPEN_LOOP_CONNECTIONS {
        let (client, spec, due_rx) = (client.clone(), spec.clone(), due_rx.clone());
        senders.spawn(async move {
            let mut run = Run::new();
            loop {
                let next = due_rx.lock().await.recv().await;
                let Some((index, due)) = next else { break };
                let result = tokio::time::timeout(REQUEST_TIMEOUT, spec.send(&client, index))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 30 s".to_string()));
                let done = Instant::now();
                match result {
                    Ok(()) => {
                        run.ok += 1;
                        run.ok_indices.push(index);
                        stats::record(&mut run.latency, done.saturating_duration_since(due));
                        run.timeline.add(done.saturating_duration_since(start));
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
                run.elapsed = run.elapsed.max(done.saturating_duration_since(start));
            }
            run
        });
    }
    let dispatcher = std::thread::spawn(move || {
        for index in 0..count {
            let due = start + interval.mul_f64(index as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if due_tx.send((index, due)).is_err() {
                break;
            }
        }
    });
    let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    let mut total = Run::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut elapsed = Duration::ZERO;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, senders.join_next()).await {
        if let Ok(run) = joined {
            elapsed = elapsed.max(run.elapsed);
            total.absorb(run);
        }
    }
    if !senders.is_empty() {
        senders.abort_all();
        total.errors += 1;
        total
            .first_error
            .get_or_insert("answers still missing 60 s after the last send".to_string());
    }
    total.elapsed = elapsed;
    total
}
