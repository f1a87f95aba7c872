//! Basic auth end to end (`basic_auth=true` on the gateway and the provider): a real NATS
//! server, a real provider-docker with a real echo container, and the gateway, all sharing one
//! temporary `secret_mount_path`.
//!
//! The gateway generates `basic-auth-user` and `basic-auth-password` (mode `0600`) on its first
//! start and reads the same ones after a restart; the provider reads them. `/system/*` of both
//! answers `401` with a Basic challenge without the credentials or with wrong ones, and `200`
//! with them; `/function/*`, `/async-function/*`, `/healthz` and `/metrics` stay open; a
//! function deployed through the gateway (which sends its own credentials to the provider) is
//! called without any.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ferry_runtime::auth::{self, PASSWORD_FILE, USER_FILE};
use ferry_tests::auth::{assert_protected, get};
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_routes_of_gateway_and_provider_need_the_generated_credentials() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let secrets = tempfile::tempdir().expect("temporary secrets folder");
    let dir = secrets.path().to_str().expect("utf-8 path");
    let env = [("basic_auth", "true"), ("secret_mount_path", dir)];

    // First start: the gateway writes the credentials (no provider needed for that, nor for
    // refusing a request without them).
    let first = TestGateway::start("http://127.0.0.1:1", &nats.url(), &env).await;
    let generated = auth::wait_and_load(secrets.path(), MINUTE)
        .await
        .expect("the gateway writes the credentials");
    assert_eq!(generated.user(), "admin");
    assert!(generated.password().len() >= 32);
    for name in [USER_FILE, PASSWORD_FILE] {
        let mode = std::fs::metadata(secrets.path().join(name))
            .expect(name)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let (status, challenge, _) = get(&first.url("/system/functions"), None).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, "Basic realm=\"Restricted\"")
    );
    first.stop().await;

    // The provider reads them; its API needs them, /healthz and /metrics do not.
    let provider = TestProvider::start_with(&guard, &env)
        .await
        .with_credentials(generated.user(), generated.password());
    assert_protected(
        &provider.url("/system/functions"),
        generated.user(),
        generated.password(),
    )
    .await;
    assert_protected(
        &provider.url("/system/info"),
        generated.user(),
        generated.password(),
    )
    .await;
    for path in ["/healthz", "/metrics"] {
        let (status, _, body) = get(&provider.url(path), None).await;
        assert_eq!(status, 200, "provider {path}: {body}");
    }

    // Restarted, the gateway keeps the credentials it generated.
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &env).await;
    assert_protected(
        &gateway.url("/system/functions"),
        generated.user(),
        generated.password(),
    )
    .await;
    assert_eq!(
        auth::load(secrets.path()).expect("credentials after the restart"),
        generated,
        "the credentials changed across a gateway restart"
    );
    let (status, _, body) = get(&gateway.url("/healthz"), None).await;
    assert_eq!(status, 200, "gateway /healthz: {body}");

    // Deployed through the gateway (which sends its own credentials on to the provider).
    let client = http_client();
    let deployed = client
        .post(gateway.url("/system/functions"))
        .basic_auth(generated.user(), Some(generated.password()))
        .body(json!({"service": "echo", "image": echo.tag}).to_string())
        .send()
        .await
        .expect("POST /system/functions");
    assert_eq!(deployed.status(), 202, "{:?}", deployed.text().await);
    assert_protected(
        &gateway.url("/system/function/echo"),
        generated.user(),
        generated.password(),
    )
    .await;
    provider.wait_available("echo", 1).await;

    // Function routes are open: a sync call, and an async one whose status needs credentials.
    wait_until("echo answers 200 through the gateway", MINUTE, || {
        let (client, url) = (client.clone(), gateway.url("/function/echo/x"));
        async move {
            let sent = client.post(&url).body("hello").send().await;
            sent.is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    let sync: Value = client
        .post(gateway.url("/function/echo/x"))
        .body("hello")
        .send()
        .await
        .expect("POST /function/echo")
        .json()
        .await
        .expect("JSON echo");
    assert_eq!(
        (sync["path"].as_str(), sync["body"].as_str()),
        (Some("/x"), Some("hello"))
    );

    let submitted = client
        .post(gateway.url("/async-function/echo"))
        .body("later")
        .send()
        .await
        .expect("POST /async-function/echo");
    assert_eq!(submitted.status(), 202);
    let call_id = submitted.headers()["x-call-id"]
        .to_str()
        .expect("X-Call-Id")
        .to_owned();
    assert_protected(
        &gateway.url(&format!("/system/async-calls/{call_id}")),
        generated.user(),
        generated.password(),
    )
    .await;
}
