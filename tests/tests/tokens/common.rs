//! The stack every token test runs on, and ways to talk to it: `basic_auth=true` on a real
//! NATS, a real provider-docker with echo containers and the gateway, sharing one temporary
//! `secret_mount_path`; requests with any `Authorization`, and raw HTTP/1.1 for requests no
//! well-behaved client would send.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_runtime::auth::{self, Credentials};
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client};
use serde_json::{Value, json};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// The default namespace.
pub(crate) const FN: &str = "openfaas-fn";

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// No `Authorization` header.
    None,
    /// The basic-auth credentials.
    Basic,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
}

pub(crate) struct Stack {
    // Fields drop in declaration order: the services stop before the guard removes what they
    // created.
    pub(crate) gateway: TestGateway,
    pub(crate) provider: TestProvider,
    pub(crate) nats: NatsServer,
    pub(crate) image: FunctionImage,
    pub(crate) admin: Credentials,
    pub(crate) secrets: tempfile::TempDir,
    /// Removes what the test created in Docker, last.
    _guard: DockerGuard,
}

/// The stack with `functions` (deployments without `image`: the echo image is used) deployed
/// and available.
pub(crate) async fn stack(functions: &[Value]) -> Stack {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let secrets = tempfile::tempdir().expect("temporary secrets folder");
    let (admin, _) = auth::load_or_generate(secrets.path()).expect("credentials");
    let dir = secrets.path().to_str().expect("utf-8 path").to_string();
    let env = [("basic_auth", "true"), ("secret_mount_path", dir.as_str())];
    let provider = TestProvider::start_with(&guard, &env)
        .await
        .with_credentials(admin.user(), admin.password());
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &env).await;
    let s = Stack {
        gateway,
        provider,
        nats,
        image,
        admin,
        secrets,
        _guard: guard,
    };
    for f in functions {
        s.deploy(f.clone()).await;
    }
    s
}

impl Stack {
    /// Deploys `f` (the echo image) through the provider and waits until it is available.
    pub(crate) async fn deploy(&self, mut f: Value) {
        f["image"] = json!(self.image.tag);
        let (code, body) = self
            .provider
            .call("POST", "/system/functions", Some(&f.to_string()))
            .await;
        assert_eq!(code, 202, "{body}");
        let name = f["service"].as_str().expect("service");
        let name = match f["namespace"].as_str() {
            Some(ns) => format!("{name}.{ns}"),
            None => name.to_string(),
        };
        self.provider.wait_available(&name, 1).await;
    }

    /// `method path` on the gateway with `auth` and an optional body: status and body.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&str>,
    ) -> (u16, String) {
        let (status, _, body) = self.exchange(method, path, auth, body).await;
        (status, body)
    }

    /// [`send`](Self::send), with the response headers.
    pub(crate) async fn exchange(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = http_client().request(method, self.gateway.url(path));
        request = match auth {
            Auth::None => request,
            Auth::Basic => request.basic_auth(self.admin.user(), Some(self.admin.password())),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    /// Creates a token with the basic-auth credentials (waiting for the gateway to reach NATS
    /// first); the token.
    pub(crate) async fn token(&self, name: &str, scopes: &[&str], namespaces: &[&str]) -> String {
        let mut request = json!({"name": name, "scopes": scopes});
        if !namespaces.is_empty() {
            request["namespaces"] = json!(namespaces);
        }
        let request = request.to_string();
        let deadline = std::time::Instant::now() + MINUTE;
        let body = loop {
            let (status, body) = self
                .send("POST", "/system/tokens", Auth::Basic, Some(&request))
                .await;
            match status {
                201 => break body,
                503 if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => panic!("creating token {name}: {status} {body}"),
            }
        };
        let created: Value = serde_json::from_str(&body).expect("JSON");
        created["token"].as_str().expect("token").to_string()
    }

    /// Submits an async call to `function` with the basic-auth credentials; its call id.
    pub(crate) async fn submit(&self, function: &str) -> String {
        let url = self.gateway.url(&format!("/async-function/{function}"));
        let response = http_client()
            .post(url)
            .basic_auth(self.admin.user(), Some(self.admin.password()))
            .body("payload")
            .send()
            .await
            .expect("submitting");
        assert_eq!(response.status(), 202, "submitting to {function}");
        response.headers()["x-call-id"]
            .to_str()
            .expect("X-Call-Id")
            .to_string()
    }
}

/// Sends `request` (request line and headers, without the final empty line) over a fresh
/// connection as it is, with `Connection: close` ([`ferry_tests::raw_http`]); status (0 if
/// the connection was dropped) and body.
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let text = format!("{request}\r\nHost: gateway\r\nConnection: close\r\n\r\n");
    let answer = ferry_tests::raw_http::send(addr, text.as_bytes()).await;
    (answer.status, answer.body)
}

/// The `message` of a JSON error body.
pub(crate) fn message(body: &str) -> String {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    value["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {body}"))
        .to_string()
}
