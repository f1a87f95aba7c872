//! The gateway with `basic_auth` on, in front of a stand-in provider that records the
//! `Authorization` header of every request it gets (NATS is not running: no token is known,
//! and the token API answers `503`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::any;
use ferry_runtime::auth::{self, Credentials};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;

use crate::test_support::{serve, start_gateway};

/// `(path, Authorization)` of every request the stand-in provider got.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A provider that answers `[]` on `/system/functions` and `404` elsewhere, recording.
async fn provider() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let router = Router::new()
        .fallback(any(|State(seen): State<Seen>, req: Request| async move {
            let authorization = req
                .headers()
                .get(AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string());
            let path = req.uri().path().to_string();
            seen.lock().unwrap().push((path.clone(), authorization));
            if path == "/system/functions" {
                (StatusCode::OK, "[]")
            } else {
                (StatusCode::NOT_FOUND, "not found")
            }
        }))
        .with_state(seen.clone());
    (serve(router).await, seen)
}

async fn gateway(
    provider: SocketAddr,
    extra: &[(&str, &str)],
) -> (SocketAddr, oneshot::Sender<()>) {
    start_gateway(&format!("http://{provider}"), extra).await
}

/// `method path` on the gateway with an optional `Authorization`; status, headers, body.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(a) = authorization {
        req = req.header(AUTHORIZATION, a);
    }
    let resp = ferry_invoke::client::http_client()
        .request(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_routes_need_the_credentials_the_gateway_generated_and_sends_on() {
    let secrets = tempfile::tempdir().unwrap();
    let dir = secrets.path().to_str().unwrap();
    let (provider, seen) = provider().await;
    let (gw, _stop) = gateway(
        provider,
        &[("basic_auth", "true"), ("secret_mount_path", dir)],
    )
    .await;
    let stored = auth::wait_and_load(secrets.path(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(stored.user(), "admin");
    // The callback signing key is written first, for the workers (64 hex digits, 0600).
    let key_file = secrets.path().join(auth::CALLBACK_SIGNING_KEY_FILE);
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key:?}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&key_file.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let right = stored.header_value();
    let wrong = Credentials::new("admin", format!("{}x", stored.password())).header_value();

    let unknown_token = format!("Bearer {}", crate::tokens::generate());
    for path in [
        "/system/functions",
        "/system/async-calls/abc",
        "/system/dead-letters",
        "/system/info",
        "/system/tokens",
        "/system/endpoints/echo",
        "/system/../system/functions",
    ] {
        for authorization in [
            None,
            Some(wrong.as_str()),
            Some("Bearer token"),
            Some(unknown_token.as_str()),
        ] {
            let (status, headers, body) = send(gw, Method::GET, path, authorization).await;
            assert_eq!(status, 401, "{path} {authorization:?}: {body}");
            let challenges: Vec<_> = headers.get_all(WWW_AUTHENTICATE).iter().collect();
            assert_eq!(
                challenges,
                ["Basic realm=\"Restricted\"", "Bearer realm=\"Restricted\""]
            );
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with("unauthorized"), "{message}");
            if authorization.is_none() {
                assert!(message.contains("basic auth"), "{message}");
            }
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the provider"
    );

    let (status, _, body) = send(gw, Method::GET, "/system/functions", Some(&right)).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "[]"));
    // The caller's header is replaced by the gateway's own: a lower-case scheme is accepted
    // from the caller, and the provider still gets the gateway's `Basic ...`.
    let lower = right.replacen("Basic", "basic", 1);
    let (status, _, _) = send(gw, Method::GET, "/system/functions", Some(&lower)).await;
    assert_eq!(status, 200);
    // The token API is the gateway's own: admin only, and NATS is needed.
    let (status, _, body) = send(gw, Method::GET, "/system/tokens", Some(&right)).await;
    assert_eq!(status, 503, "{body}");
    // The function route is open (a function's own Authorization header is no business of
    // the gateway); the gateway's look-up of the function carries the credentials.
    let (status, _, body) = send(gw, Method::GET, "/function/echo", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = send(gw, Method::GET, "/function/echo", Some("Bearer x")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = send(gw, Method::GET, "/healthz", None).await;
    assert_ne!(status, 401);
    // A script in a browser (the dashboard) gets its 401 without a challenge, so the browser
    // opens no login prompt of its own; the dashboard's files need no credentials.
    let req = http::Request::get(format!("http://{gw}/system/functions"))
        .header("x-requested-with", "ferry-dashboard")
        .body(Body::empty())
        .unwrap();
    let resp = ferry_invoke::client::http_client()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    let (status, headers, _) = send(gw, Method::GET, "/ui/js/app.js", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(p, _)| p == "/system/functions"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|(p, _)| p.starts_with("/system/function/")),
        "{seen:?}"
    );
    for (path, authorization) in &seen {
        assert_eq!(authorization.as_deref(), Some(right.as_str()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_basic_auth_system_routes_are_open_and_headers_pass_through() {
    let secrets = tempfile::tempdir().unwrap();
    let dir = secrets.path().to_str().unwrap();
    let (provider, seen) = provider().await;
    let (gw, _stop) = gateway(provider, &[("secret_mount_path", dir)]).await;
    let (status, _, _) = send(gw, Method::GET, "/system/functions", None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(gw, Method::GET, "/system/functions", Some("Bearer t")).await;
    assert_eq!(status, 200);
    // Tokens cannot be made while everything is open (they would hold once auth is on).
    let (status, _, body) = send(gw, Method::POST, "/system/tokens", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("basic_auth=true"), "{body}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        [
            ("/system/functions".to_string(), None),
            (
                "/system/functions".to_string(),
                Some("Bearer t".to_string())
            )
        ]
    );
    assert_eq!(std::fs::read_dir(secrets.path()).unwrap().count(), 0);
}
