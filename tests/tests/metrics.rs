//! Metrics end to end, every component real: the echo function in a container built from
//! the workspace's watchdog and echo-server, provider-docker on the Docker engine, NATS
//! JetStream, the gateway and a queue-worker. The counts in each service's `/metrics` agree
//! with the calls made, `invocationCount` in `/system/functions` agrees with the gateway's
//! counters, `/system/info` has OpenFaaS' shape, and every `/metrics` (gateway, provider,
//! queue-worker, watchdog) passes `promtool check metrics`; a real Prometheus scraping the
//! gateway gives a function's history (`GET /system/function-metrics`).

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use ferry_tests::callback::CallbackReceiver;
use ferry_tests::gateway::TestGateway;
use ferry_tests::prometheus::{PrometheusServer, Samples, check_metrics};
use ferry_tests::provider::{TestProvider, function_containers};
use ferry_tests::worker::TestWorker;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, free_port, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
const ECHO: &str = "echo.openfaas-fn";
/// The gateway's metrics whose OpenFaaS names promtool's linter objects to; they parse.
const OPENFAAS_NAMES: &[&str] = &[
    "gateway_function_invocation_started",
    "gateway_service_count",
];

/// The echo function deployed and ready, NATS, the gateway.
struct Platform {
    // Fields drop in declaration order: the services stop before the guard removes their
    // containers.
    gateway: TestGateway,
    provider: TestProvider,
    nats: NatsServer,
    guard: DockerGuard,
}

async fn platform() -> Platform {
    let guard = DockerGuard::new().await;
    let nats = NatsServer::start_async().await;
    let provider = TestProvider::start(&guard).await;
    deploy(&guard, &provider, json!({"service": "echo"})).await;
    provider.wait_available("echo", 1).await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    Platform {
        guard,
        nats,
        provider,
        gateway,
    }
}

/// Deploys the echo image as `deployment` says.
async fn deploy(guard: &DockerGuard, provider: &TestProvider, mut deployment: Value) {
    let echo = FunctionImage::echo_http(guard).await;
    deployment["image"] = json!(echo.tag);
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&deployment.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
}

impl Platform {
    async fn get_json(&self, path: &str) -> Value {
        let response = http_client()
            .get(self.gateway.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("a JSON answer")
    }

    async fn gateway_metrics(&self) -> String {
        let response = http_client()
            .get(self.gateway.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        response.text().await.expect("the metrics text")
    }

    /// `invocationCount` of echo in `GET /system/functions`.
    async fn invocation_count(&self) -> Value {
        let list = self.get_json("/system/functions").await;
        let echo = list
            .as_array()
            .expect("a list")
            .iter()
            .find(|f| f["name"] == "echo")
            .unwrap_or_else(|| panic!("echo in {list}"))
            .clone();
        echo["invocationCount"].clone()
    }

    /// An async submission; returns its status.
    async fn submit(&self, function: &str, headers: &[(&str, &str)]) -> u16 {
        let mut request = http_client()
            .post(self.gateway.url(&format!("/async-function/{function}")))
            .body("queued");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("submitting").status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_calls_are_counted_per_function_and_code_and_every_service_exports_valid_text() {
    let p = platform().await;
    let client = http_client();
    for i in 0..10 {
        let mut request = client.post(p.gateway.url("/function/echo")).body("hi");
        if i % 3 == 0 {
            request = request.header("x-echo-status", "418");
        }
        let status = request.send().await.expect("calling echo").status();
        assert_eq!(status, if i % 3 == 0 { 418 } else { 200 });
    }
    // Unknown and invalid names are answered, not labelled.
    for path in [
        "/function/nope-1",
        "/function/nope-2.dev",
        "/function/Bad_Name",
    ] {
        let status = client
            .get(p.gateway.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }

    let text = p.gateway_metrics().await;
    let gw = Samples::parse(&text);
    let code = |c| [("function_name", ECHO), ("code", c)];
    assert_eq!(
        gw.value("gateway_function_invocation_total", &code("200")),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        gw.value("gateway_function_invocation_total", &code("418")),
        Some(4.0)
    );
    assert_eq!(
        gw.value("gateway_functions_seconds_count", &code("200")),
        Some(6.0)
    );
    assert_eq!(
        gw.value(
            "gateway_function_invocation_started",
            &[("function_name", ECHO)]
        ),
        Some(10.0)
    );
    assert_eq!(
        gw.value("gateway_service_count", &[("function_name", ECHO)]),
        Some(1.0)
    );
    assert!(
        !text.contains("nope") && !text.contains("Bad_Name"),
        "{text}"
    );
    check_metrics("the gateway", &text, OPENFAAS_NAMES);

    // invocationCount agrees, in the list and for the one function.
    assert_eq!(p.invocation_count().await, json!(10));
    let status = p.get_json("/system/function/echo").await;
    assert_eq!(status["invocationCount"], json!(10), "{status}");
    assert_eq!(status["replicas"], json!(1), "{status}");

    // /system/info: the provider's info and the gateway's own version.
    let info = p.get_json("/system/info").await;
    assert_eq!(
        info["provider"]["provider"], "ferry-provider-docker",
        "{info}"
    );
    assert_eq!(info["provider"]["orchestration"], "docker", "{info}");
    assert_eq!(
        info["provider"]["version"]["release"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(info["provider"]["version"]["sha"].is_string(), "{info}");
    assert_eq!(
        info["version"]["release"],
        env!("CARGO_PKG_VERSION"),
        "{info}"
    );
    assert!(info["version"]["sha"].is_string(), "{info}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(info["arch"], arch, "{info}");

    // The provider: replicas per function.
    let text = p.provider.metrics().await;
    let provider = Samples::parse(&text);
    let echo = [("function_name", ECHO)];
    assert_eq!(
        provider.value("provider_function_replicas", &echo),
        Some(1.0)
    );
    assert_eq!(
        provider.value("provider_function_available_replicas", &echo),
        Some(1.0),
        "{text}"
    );
    check_metrics("the provider", &text, &[]);

    // The function's watchdog: its metrics port 8081, published on 127.0.0.1 like 8080.
    let containers = function_containers(&p.guard, "echo").await;
    let published = containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|port| port.private_port == 8081 && port.public_port.is_some())
        .and_then(|port| port.public_port)
        .unwrap_or_else(|| panic!("the watchdog's metrics port is not published: {containers:?}"));
    let response = client
        .get(format!("http://127.0.0.1:{published}/metrics"))
        .send()
        .await
        .expect("the watchdog's /metrics");
    assert_eq!(response.status(), 200);
    check_metrics("the watchdog", &response.text().await.unwrap(), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_are_counted_by_the_gateway_and_the_worker_with_the_backlog_per_queue() {
    let p = platform().await;
    // A function on a queue no worker serves: its calls stay pending.
    let parked = json!({"service": "parked", "annotations": {"com.openfaas.queue": "parked"}});
    deploy(&p.guard, &p.provider, parked).await;
    let worker = TestWorker::start(&p.nats.url(), &p.provider.url(""), &[]).await;
    let receiver = CallbackReceiver::start().await;
    let callback = receiver.url("/done");
    let with_callback = [("x-callback-url", callback.as_str())];
    let keyed = [
        ("x-callback-url", callback.as_str()),
        ("idempotency-key", "order-1"),
    ];

    assert_eq!(p.submit("echo", &keyed).await, 202);
    assert_eq!(p.submit("echo", &keyed).await, 202, "a duplicate");
    assert_eq!(p.submit("echo", &with_callback).await, 202);
    assert_eq!(p.submit("echo", &with_callback).await, 202);
    assert_eq!(p.submit("parked", &[]).await, 202);
    assert_eq!(p.submit("parked", &[]).await, 202);
    let bad_callback = [("x-callback-url", "ftp://example.com/")];
    assert_eq!(p.submit("echo", &bad_callback).await, 400);
    assert_eq!(p.submit("nope", &[]).await, 404);
    receiver.wait_for(3, MINUTE).await;

    // The worker settles each call after its callback: wait for its counters.
    let echo_pending = [("queue_name", "faas-request"), ("function_name", ECHO)];
    wait_until("the worker counted the three calls", MINUTE, || async {
        let w = Samples::parse(&worker.metrics().await);
        w.value("queue_worker_messages_total", &[("outcome", "succeeded")]) == Some(3.0)
            && w.value("queue_worker_pending_messages", &echo_pending)
                .is_none()
    })
    .await;
    let text = worker.metrics().await;
    let w = Samples::parse(&text);
    assert_eq!(
        w.value("queue_worker_callbacks_total", &[("outcome", "delivered")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        w.value("queue_worker_attempts_total", &[("function_name", ECHO)]),
        Some(3.0)
    );
    assert_eq!(
        w.value(
            "queue_worker_end_to_end_seconds_count",
            &[("state", "succeeded")]
        ),
        Some(3.0)
    );
    assert_eq!(w.value("queue_worker_inflight", &[]), Some(0.0));
    let parked_pending = [
        ("queue_name", "parked"),
        ("function_name", "parked.openfaas-fn"),
    ];
    assert_eq!(
        w.value("queue_worker_pending_messages", &parked_pending),
        Some(2.0),
        "{text}"
    );
    check_metrics("the queue-worker", &text, &[]);

    let text = p.gateway_metrics().await;
    let gw = Samples::parse(&text);
    let submissions = |function, outcome| {
        gw.value(
            "gateway_async_submissions_total",
            &[("function_name", function), ("outcome", outcome)],
        )
    };
    assert_eq!(submissions(ECHO, "accepted"), Some(3.0), "{text}");
    assert_eq!(submissions(ECHO, "duplicate"), Some(1.0));
    assert_eq!(submissions("parked.openfaas-fn", "accepted"), Some(2.0));
    assert_eq!(
        submissions("", "rejected"),
        Some(2.0),
        "unknown or unchecked"
    );
    // The worker invoked echo at its replica, not through the gateway's sync route: the
    // gateway counted no call; the worker's attempts are the invocations.
    assert_eq!(
        gw.value(
            "gateway_function_invocation_total",
            &[("function_name", ECHO), ("code", "200")]
        ),
        None
    );
    check_metrics("the gateway", &text, OPENFAAS_NAMES);
    assert_eq!(p.invocation_count().await, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functions_history_comes_from_the_prometheus_that_scrapes_the_gateway() {
    let guard = DockerGuard::new().await;
    let nats = NatsServer::start_async().await;
    let provider = TestProvider::start(&guard).await;
    deploy(&guard, &provider, json!({"service": "echo"})).await;
    provider.wait_available("echo", 1).await;
    let prometheus_port = free_port();
    let port = prometheus_port.to_string();
    let extra = [
        ("faas_prometheus_host", "127.0.0.1"),
        ("faas_prometheus_port", port.as_str()),
    ];
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &extra).await;
    let client = http_client();
    let history = |query: &str| {
        let request = client.get(gateway.url(&format!("/system/function-metrics?{query}")));
        async move { request.send().await.expect("GET /system/function-metrics") }
    };

    // Prometheus not there yet: 502, saying so.
    let resp = history("function=echo").await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("Prometheus"),
        "{body}"
    );

    // Calls while Prometheus scrapes every second: the history shows their rate, latency
    // and the replica count.
    let _prometheus = PrometheusServer::start(prometheus_port, &[gateway.addr().to_string()]).await;
    let seen = std::sync::Mutex::new(Value::Null);
    wait_until("the calls in the function's history", MINUTE, || {
        let call = client.post(gateway.url("/function/echo")).body("x");
        let read = history("function=echo&namespace=openfaas-fn&range=5m");
        let seen = &seen;
        async move {
            assert_eq!(call.send().await.unwrap().status(), 200);
            let resp = read.await;
            assert_eq!(resp.status(), 200);
            let last: Value = resp.json().await.unwrap();
            let any = |series: &str| {
                last[series]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p[1].as_f64().unwrap() > 0.0)
            };
            let done = any("rate") && any("p99") && any("p50") && any("replicas");
            *seen.lock().unwrap() = last;
            done
        }
    })
    .await;
    let last = seen.into_inner().unwrap();
    assert_eq!(last["function"], ECHO);
    assert_eq!(last["step"], 5, "{last}");
    assert!(
        last["errorRate"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p[1] == 0.0)
    );
    let replicas = last["replicas"].as_array().unwrap();
    assert_eq!(replicas.last().unwrap()[1], 1.0, "{last}");

    for bad in ["", "function=echo&range=10s", "function=echo&range=forever"] {
        assert_eq!(history(bad).await.status(), 400, "{bad}");
    }
    // A gateway without faas_prometheus_host: 501.
    let plain = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let resp = client
        .get(plain.url("/system/function-metrics?function=echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 501);
}
