//! The platform as its users start it: `make up` stages the static binaries, builds the
//! `FROM scratch` images and starts `compose.yaml` (NATS, gateway, two queue-workers, the
//! Docker provider, Prometheus); `/system/*` answers 401 without the basic-auth credentials
//! `make credentials` prints, or with wrong ones, and 200 with them; the echo function is
//! deployed (with the credentials) and called through the published gateway, sync and async
//! with a callback; a call queued while the workers are stopped survives `docker compose
//! down` and completes after the next `make up`, and so do the credentials; `make login`
//! writes them into faas-cli's config file as `faas-cli login` does.
//!
//! The stack is isolated from any other on the engine ([`ferry_tests::compose::Stack`]: its
//! own names, free ports, a temporary data folder, everything labelled with the test id and
//! removed by the test's [`DockerGuard`], pass or fail).

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use ferry_tests::auth::assert_protected;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::compose::{
    Stack, assert_prometheus_targets, credentials, host_address_on, wait_healthy, with_auth,
};
use ferry_tests::{DockerGuard, FunctionImage, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

/// Sync invocation of the echo function answers 200 with what it was sent.
async fn assert_sync_call(stack: &Stack) {
    let client = http_client();
    let url = stack.gateway("/function/echo/hello?x=1");
    let mut last = String::new();
    let answered = tokio::time::timeout(MINUTE, async {
        loop {
            // The provider connects the gateway to the functions network within a reconcile
            // round of the gateway's start: until then calls fail.
            match client.post(&url).body("sync body").send().await {
                Ok(r) if r.status() == 200 => return r.json::<Value>().await.expect("JSON echo"),
                Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the echo function did not answer 200 within a minute: {last}"));
    assert_eq!(answered["method"], "POST", "{answered}");
    assert_eq!(answered["path"], "/hello", "{answered}");
    assert_eq!(answered["query"], "x=1", "{answered}");
    assert_eq!(answered["body"], "sync body", "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_up_runs_the_platform_and_its_data_survives_down_and_up() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let stack = Stack::new(&guard);
    let client = http_client();

    stack.make("up").await;
    let health = client
        .get(stack.gateway("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200, "/healthz after make up");
    wait_healthy(&guard, &stack).await;

    // Basic auth on /system/*, with the credentials the gateway generated.
    let auth = credentials(&stack).await;
    assert_protected(
        &stack.gateway("/system/functions"),
        &auth.user,
        &auth.password,
    )
    .await;
    let auth = &auth;
    // faas-cli's config file, written twice: one entry per gateway.
    stack.make("login").await;
    stack.make("login").await;
    ferry_tests::auth::assert_faas_cli_login(
        &stack.openfaas_config.path().join("config.yml"),
        &stack.gateway(""),
        &auth.user,
        &auth.password,
    );

    // The README's quick start: `ferry new` → `ferry up` → `ferry invoke`, from make up's
    // ferry/watchdog image, with make login's credentials (only the image tag and its label
    // are the test's).
    let ferry = ferry_tests::cli::Ferry::new(&stack.gateway(""))
        .await
        .faas_cli_config(stack.openfaas_config.path());
    let prefix = ["--prefix", "ferry-test"];
    ferry
        .ok(
            &["new", "hello", "--lang", "shell", prefix[0], prefix[1]],
            b"",
        )
        .await;
    let file = ferry.path().join("hello.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(":latest", &format!(":{}", stack.id))).unwrap();
    let label = format!("{}={}", ferry_tests::TEST_LABEL, stack.id);
    let watchdog = format!("ferry/watchdog:{}", stack.id);
    let up = [
        "up",
        "-f",
        "hello.yml",
        "--label",
        &label,
        "--watchdog-image",
        &watchdog,
    ];
    ferry.ok(&up, b"").await;
    let answer = ferry.ok(&["invoke", "hello"], b"compose").await;
    assert_eq!(answer, "Hello from hello: compose\n");
    ferry.ok(&["remove", "hello"], b"").await;

    // Deploy the echo function through the published gateway, then call it sync.
    let deployment = json!({"service": "echo", "image": echo.tag}).to_string();
    let deployed = with_auth(client.post(stack.gateway("/system/functions")), auth)
        .body(deployment)
        .send()
        .await
        .expect("POST /system/functions");
    assert_eq!(deployed.status(), 202, "{:?}", deployed.text().await);
    wait_until("echo has a ready replica", MINUTE, || async {
        let Ok(r) = with_auth(client.get(stack.gateway("/system/function/echo")), auth)
            .send()
            .await
        else {
            return false;
        };
        let status: Value = r.json().await.unwrap_or_default();
        status["availableReplicas"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_sync_call(&stack).await;

    // Async with a callback: the workers run in containers, so the receiver listens on the
    // host's address on the stack's network.
    let host = host_address_on(&guard, &stack.network()).await;
    let receiver = CallbackReceiver::start_on(host).await;
    let submitted = client
        .post(stack.gateway("/async-function/echo/later?y=2"))
        .header("X-Callback-Url", receiver.url("/done"))
        .body("async body")
        .send()
        .await
        .expect("POST /async-function/echo");
    assert_eq!(submitted.status(), 202);
    let call_id = submitted.headers()["x-call-id"]
        .to_str()
        .expect("X-Call-Id")
        .to_owned();
    let callback = receiver.wait_for(1, MINUTE).await.remove(0);
    assert_eq!(callback.uri, "/done");
    assert_eq!(callback.header("x-call-id"), call_id);
    assert_eq!(callback.header("x-function-status"), "200");
    let echoed: Value = serde_json::from_slice(&callback.body).expect("JSON echo");
    assert_eq!(echoed["body"], "async body", "{echoed}");
    assert_eq!(echoed["path"], "/later", "{echoed}");

    assert_prometheus_targets(&stack).await;
    // The gateway reaches the stack's Prometheus for a function's history (the dashboard's
    // charts): the replica count it has scraped.
    wait_until("echo's history from Prometheus", MINUTE, || async {
        let url = stack.gateway("/system/function-metrics?function=echo&range=15m");
        let Ok(r) = with_auth(client.get(url), auth).send().await else {
            return false;
        };
        let history: Value = r.json().await.unwrap_or_default();
        history["replicas"]
            .as_array()
            .is_some_and(|points| points.iter().any(|p| p[1] == 1.0))
    })
    .await;

    // A call queued while no worker runs is kept across `down` and `up`, and so is the
    // function. (No callback for this one: `down` removes the stack's network, and with it
    // the address the receiver listens on; the call's status says how it ended.)
    stack.compose(&["stop", "queue-worker"]).await;
    let queued = client
        .post(stack.gateway("/async-function/echo/queued"))
        .body("queued body")
        .send()
        .await
        .expect("POST /async-function/echo");
    assert_eq!(queued.status(), 202);
    let queued_id = queued.headers()["x-call-id"]
        .to_str()
        .expect("X-Call-Id")
        .to_owned();
    let status_path = format!("/system/async-calls/{queued_id}");
    let status: Value = with_auth(client.get(stack.gateway(&status_path)), auth)
        .send()
        .await
        .expect("GET call status")
        .json()
        .await
        .expect("call status JSON");
    assert_eq!(status["state"], "queued", "{status}");

    stack.compose(&["down"]).await;
    assert_eq!(
        stack.compose(&["ps", "-q"]).await.trim(),
        "",
        "down left containers"
    );
    stack.make("up").await;
    wait_healthy(&guard, &stack).await;
    let after = credentials(&stack).await;
    assert_eq!(
        (after.user.as_str(), after.password.as_str()),
        (auth.user.as_str(), auth.password.as_str()),
        "the credentials changed across down/up"
    );

    let mut last = Value::Null;
    let finished = tokio::time::timeout(2 * MINUTE, async {
        loop {
            let request = with_auth(client.get(stack.gateway(&status_path)), auth);
            let status = match request.send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if let Some(status) = status {
                if status["state"] == "succeeded" {
                    return status;
                }
                last = status;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the queued call did not succeed after up: {last}"));
    assert_eq!(finished["lastStatus"], 200, "{finished}");

    let functions: Value = with_auth(client.get(stack.gateway("/system/functions")), auth)
        .send()
        .await
        .expect("GET /system/functions")
        .json()
        .await
        .expect("functions JSON");
    let names: Vec<&str> = functions
        .as_array()
        .expect("a list of functions")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["echo"], "{functions}");
    assert_sync_call(&stack).await;
}
