//! The whole platform for end-to-end tests of the async path: NATS, the provider with an
//! echo function image, the gateway, and workers on demand ([`platform`], [`Platform`]). The
//! echo function fails on request (`X-Echo-Fail-Times`, `ECHO_STATUS`) and reports what it
//! saw at `/_/stats`, so invocations are counted by the function itself
//! ([`Platform::invocations`]).

use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::TestGateway;
use crate::provider::TestProvider;
use crate::worker::TestWorker;
use crate::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};

/// A minute: the patience of most waits.
pub const MINUTE: Duration = Duration::from_secs(60);

/// Quick retries so tests do not wait for production backoffs.
pub const FAST_RETRIES: [(&str, &str); 4] = [
    ("initial_retry_wait", "200ms"),
    ("max_retry_wait", "1s"),
    ("callback_initial_wait", "200ms"),
    ("callback_max_wait", "1s"),
];

pub struct Platform {
    // Fields drop in declaration order: the services stop before the guard removes what
    // they created.
    /// The gateway.
    pub gateway: TestGateway,
    /// The provider.
    pub provider: TestProvider,
    /// NATS with JetStream.
    pub nats: NatsServer,
    /// The echo function image.
    pub image: FunctionImage,
    /// Removes what the test created in Docker.
    pub guard: DockerGuard,
}

/// The platform with `functions` (deployments without `image`: the echo image is used)
/// deployed and available.
pub async fn platform(functions: &[Value]) -> Platform {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let provider = TestProvider::start(&guard).await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let p = Platform {
        guard,
        image,
        nats,
        provider,
        gateway,
    };
    for f in functions {
        p.deploy(f.clone()).await;
    }
    p
}

impl Platform {
    /// Deploys `f` (the echo image) and waits until it is available.
    pub async fn deploy(&self, mut f: Value) {
        f["image"] = json!(self.image.tag);
        let name = f["service"].as_str().unwrap().to_string();
        let (code, body) = self
            .provider
            .call("POST", "/system/functions", Some(&f.to_string()))
            .await;
        assert_eq!(code, 202, "{body}");
        self.provider.wait_available(&name, 1).await;
    }

    /// A worker with fast retries and `extra`.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> TestWorker {
        let mut env: Vec<(&str, &str)> = FAST_RETRIES.to_vec();
        env.extend_from_slice(extra);
        TestWorker::start(&self.nats.url(), &self.provider.url(""), &env).await
    }

    /// Submits an async call; returns its call id.
    pub async fn submit(&self, function: &str, callback: &str, headers: &[(&str, &str)]) -> String {
        let mut req = http_client()
            .post(self.gateway.url(&format!("/async-function/{function}")))
            .header("x-callback-url", callback)
            .body("payload");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("submitting");
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let id = resp.headers()["x-call-id"].to_str().unwrap().to_string();
        assert_eq!(
            resp.headers()["location"],
            format!("/system/async-calls/{id}").as_str()
        );
        id
    }

    /// `GET /system/async-calls/<id>` (200 expected).
    pub async fn status(&self, id: &str) -> Value {
        let resp = http_client()
            .get(self.gateway.url(&format!("/system/async-calls/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "status of {id}");
        resp.json().await.unwrap()
    }

    /// `GET /system/dead-letters/<id>` (200 expected).
    pub async fn dead_letter(&self, id: &str) -> Value {
        let resp = http_client()
            .get(self.gateway.url(&format!("/system/dead-letters/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "dead letter of {id}");
        resp.json().await.unwrap()
    }

    /// Waits until call `id` is in `state`; its status then.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        wait_until(&format!("call {id} is {state}"), MINUTE, || async {
            self.status(id).await["state"] == state
        })
        .await;
        self.status(id).await
    }

    /// Submits `n` calls to `echo` that each sleep `sleep_ms`, calling back to `callback`;
    /// returns their ids once a worker runs all of them.
    pub async fn submit_running(&self, n: usize, sleep_ms: &str, callback: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(
                self.submit("echo", callback, &[("x-echo-sleep-ms", sleep_ms)])
                    .await,
            );
        }
        wait_until("the worker runs the calls", MINUTE, || async {
            let mut running = 0;
            for id in &ids {
                running += usize::from(self.status(id).await["state"] == "running");
            }
            running == n
        })
        .await;
        ids
    }

    /// When the function saw each request of call `id` (Unix ms), from its own `/_/stats`.
    pub async fn invocations(&self, function: &str, id: &str) -> Vec<u64> {
        let stats: Value = http_client()
            .get(self.gateway.url(&format!("/function/{function}/_/stats")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["calls"][id]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    }
}
