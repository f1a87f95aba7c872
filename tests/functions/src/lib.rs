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
//! header. `GET /_/secret/<name>` returns the raw bytes of `<secrets_dir>/<name>`
//! (`/var/openfaas/secrets` by default) or 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// Serves connections from `listener` forever (until accepting fails).
pub async fn serve(listener: TcpListener, options: Options) -> std::io::Result<()> {
    let options = Arc::new(options);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let options = options.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let options = options.clone();
                async move { Ok::<_, Infallible>(handle(req, &options).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

/// Answers one request (see the crate docs).
pub async fn handle(req: Request<Incoming>, options: &Options) -> Response<Full<Bytes>> {
    if let Some(name) = req.uri().path().strip_prefix("/_/secret/") {
        return secret(&options.secrets_dir, name).await;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

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
    let echo = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "hostname": hostname(),
        "env": env,
    });

    let control = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = control("x-echo-sleep-ms").and_then(|v| v.trim().parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(Value::to_string(&echo))));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(status) = control("x-echo-status").and_then(|v| v.trim().parse().ok()) {
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    }
    for line in parts
        .headers
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
    resp
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
