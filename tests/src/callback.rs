//! An HTTP server that stands in for a user's `X-Callback-Url`: it records every request it
//! receives (method, path, headers, body) and can be told to fail.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::wait_until;

/// One request received by the [`CallbackReceiver`].
#[derive(Debug, Clone)]
pub struct Received {
    /// Request method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lower-case names (last value wins).
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Bytes,
    /// When it arrived (its headers).
    pub at: std::time::Instant,
}

impl Received {
    /// A header's value, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Status to answer with (200 unless changed).
    status: Mutex<Option<u16>>,
}

/// The receiver; stops when dropped.
pub struct CallbackReceiver {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackReceiver {
    /// Starts listening on a free port of 127.0.0.1.
    pub async fn start() -> CallbackReceiver {
        CallbackReceiver::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// Starts listening on a free port of `ip`: for callers in containers, the host's address
    /// on a network the test created (e.g. a compose network's gateway address).
    pub async fn start_on(ip: IpAddr) -> CallbackReceiver {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind callback receiver on {ip}: {e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().expect("receiver address")
        );
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, hyper::Error>(record(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CallbackReceiver { base, shared, task }
    }

    /// `http://<address>:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers every later request with `status` (e.g. 500 to test callback retries).
    pub fn respond_with(&self, status: u16) {
        *self.shared.status.lock().expect("receiver lock") = Some(status);
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.shared.received.lock().expect("receiver lock").len()
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("receiver lock").clone()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`), then returns all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        wait_until(&format!("{n} callbacks arrive"), timeout, || async {
            self.shared.received.lock().expect("receiver lock").len() >= n
        })
        .await;
        self.received()
    }
}

impl Drop for CallbackReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(state: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    state
        .received
        .lock()
        .expect("receiver lock")
        .push(Received {
            at: arrived,
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers,
            body,
        });
    let status = state.status.lock().expect("receiver lock").unwrap_or(200);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp
}
