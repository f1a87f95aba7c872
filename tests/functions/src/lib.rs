//! Test functions for ferry's function images.
//!
//! [`serve`] is `echo-server`: a tiny HTTP/1.1 server that the watchdog runs in `http` mode
//! (it listens on `127.0.0.1:5000` by default, see the binary). Any method and path answers
//! 200 with a JSON echo of the request:
//!
//! ```json
//! {"method": "POST", "path": "/a", "query": "x=1", "headers": {"x-call-id": ["…"]},
//!  "body": "…", "hostname": "…", "env": {"fprocess": "…"}}
//! ```
//!
//! `query` is `""` without a query string, header names are lower-case with every value
//! listed, `body` is lossy UTF-8, `hostname` comes from `HOSTNAME` or `/etc/hostname`, and
//! `env` holds the process environment except the CGI `Http_*` variables.
//!
//! Request headers steer the answer: `X-Echo-Status: <code>` sets the status,
//! `X-Echo-Sleep-Ms: <n>` delays it, and each `X-Echo-Header: Name: value` adds a response
//! header. `X-Echo-Fail-Times: <n>` makes the first `n` requests carrying the same
//! `X-Call-Id` fail with `X-Echo-Fail-Status` (default 503), to exercise retries.
//! `X-Echo-Bytes: <n>` answers `n` bytes (`0123456789` repeated) instead of the echo. The
//! environment variable `ECHO_STATUS` sets the status of every answer that has no
//! `X-Echo-Status` (a "broken" function that a redeploy fixes).
//!
//! `GET /_/secret/<name>` returns the raw bytes of `<secrets_dir>/<name>`
//! (`/var/openfaas/secrets` by default) or 404. `GET /_/stats` returns
//! `{"requests": n, "calls": {"<X-Call-Id>": [<Unix ms of each request>, ...]}}`: what the
//! function saw, so tests can count invocations and their spacing.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Where OpenFaaS mounts function secrets.
pub const SECRETS_DIR: &str = "/var/openfaas/secrets";

/// Settings of the echo server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder served under `/_/secret/<name>`.
    pub secrets_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secrets_dir: PathBuf::from(SECRETS_DIR),
        }
    }
}

/// What the server has seen: requests per call id, with their arrival times.
#[derive(Debug, Default)]
pub struct Stats {
    requests: u64,
    calls: HashMap<String, Vec<u64>>,
}

/// Serves connections from `listener` forever (until accepting fails).
pub async fn serve(listener: TcpListener, options: Options) -> std::io::Result<()> {
    let options = Arc::new(options);
    let stats = Arc::new(Mutex::new(Stats::default()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (options, stats) = (options.clone(), stats.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (options, stats) = (options.clone(), stats.clone());
                async move { Ok::<_, Infallible>(handle(req, &options, &stats).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

/// Answers one request (see the crate docs).
pub async fn handle(
    req: Request<Incoming>,
    options: &Options,
    stats: &Mutex<Stats>,
) -> Response<Full<Bytes>> {
    if let Some(name) = req.uri().path().strip_prefix("/_/secret/") {
        return secret(&options.secrets_dir, name).await;
    }
    if req.uri().path() == "/_/stats" {
        return stats_response(stats);
    }
    let call_id = req
        .headers()
        .get("x-call-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let seen = {
        let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.requests += 1;
        let times = stats.calls.entry(call_id).or_default();
        times.push(unix_ms());
        times.len() as u64
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let echo = echo_json(&parts, &body);

    let control = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = control("x-echo-sleep-ms").and_then(|v| v.trim().parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let sized = control("x-echo-bytes").and_then(|v| v.trim().parse::<usize>().ok());
    let mut resp = match sized {
        Some(n) => {
            let bytes: Vec<u8> = (0..n).map(|i| b'0' + (i % 10) as u8).collect();
            let mut r = Response::new(Full::new(Bytes::from(bytes)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        None => {
            let mut r = Response::new(Full::new(Bytes::from(Value::to_string(&echo))));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    };
    let forced = std::env::var("ECHO_STATUS").ok();
    let status = control("x-echo-status").or(forced.as_deref());
    if let Some(status) = status.and_then(|v| v.trim().parse().ok()) {
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    }
    let fail_times: u64 = control("x-echo-fail-times")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if seen <= fail_times {
        let fail = control("x-echo-fail-status")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(503);
        *resp.status_mut() = StatusCode::from_u16(fail).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    add_headers(&mut resp, &parts.headers);
    resp
}

/// What an echo answers: the request (method, path, query, headers, body) and where it ran.
fn echo_json(parts: &hyper::http::request::Parts, body: &[u8]) -> Value {
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.entry(name.as_str()).or_default().push(value);
    }
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .filter(|(k, _)| !k.starts_with("Http_"))
        .collect();
    json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
        "hostname": hostname(),
        "env": env,
    })
}

/// Appends the headers that `X-Echo-Header: <name>: <value>` request lines ask for.
fn add_headers(resp: &mut Response<Full<Bytes>>, headers: &hyper::HeaderMap) {
    for line in headers
        .get_all("x-echo-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value.trim()),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
}

fn stats_response(stats: &Mutex<Stats>) -> Response<Full<Bytes>> {
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    let body = json!({"requests": stats.requests, "calls": stats.calls});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

async fn secret(dir: &std::path::Path, name: &str) -> Response<Full<Bytes>> {
    let valid = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    let read = if valid {
        tokio::fs::read(dir.join(name)).await.ok()
    } else {
        None
    };
    let (status, bytes) = match read {
        Some(bytes) => (StatusCode::OK, Bytes::from(bytes)),
        None => (
            StatusCode::NOT_FOUND,
            Bytes::from(format!("secret {name:?} not found\n")),
        ),
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    resp
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn secret_names_cannot_leave_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok"), b"x").unwrap();
        assert_eq!(super::secret(dir.path(), "ok").await.status(), 200);
        for name in ["", ".", "..", "../ok", "sub/ok"] {
            assert_eq!(
                super::secret(dir.path(), name).await.status(),
                404,
                "{name:?}"
            );
        }
    }
}
