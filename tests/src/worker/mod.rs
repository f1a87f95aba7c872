//! `queue-worker` for tests: in-process through `run()` ([`TestWorker`]) or as the real binary
//! ([`start_process`]); a stand-in for the provider and the function replicas
//! ([`FakeGateway`]) that records the calls the worker makes and answers each as scripted (it
//! also serves as a scriptable callback receiver);
//! helpers that queue calls the way the gateway does; and readers of what the worker records
//! (call status records, dead letters, queued callbacks).
//!
//! - this file: [`TestWorker`], [`start_process`] and the health checks;
//! - `fake_gateway`: [`FakeGateway`], [`Reply`], [`Call`];
//! - `queue`: queueing calls ([`publish_call`], [`publish_raw`]), the streams' contents
//!   ([`stored_calls`], [`stored_callbacks`]) and what the worker records ([`call_status`],
//!   [`create_status`], [`dead_letters`]).

mod fake_gateway;
mod queue;

pub use fake_gateway::{Call, FakeGateway, Reply};
pub use queue::{
    StoredDeadLetter, call_status, create_status, dead_letters, publish_call, publish_raw,
    stored_callbacks, stored_calls,
};

use std::collections::HashMap;
use std::time::Duration;

use ferry_queue_worker::{Config, WorkerError};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::process::ServiceProcess;
use crate::{free_port, http_client, wait_until};

/// How long a worker gets to report healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker run in-process on `127.0.0.1:<free port>`; stops on drop.
pub struct TestWorker {
    health_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), WorkerError>>>,
}

impl TestWorker {
    /// Starts a worker for `nats_url` and the provider at `provider_url` with `extra`
    /// environment variables
    /// (e.g. `[("max_inflight", "4")]`), and waits until `/healthz` answers 200.
    pub async fn start(nats_url: &str, provider_url: &str, extra: &[(&str, &str)]) -> TestWorker {
        let worker = TestWorker::spawn(nats_url, provider_url, extra).await;
        worker.wait_healthy().await;
        worker
    }

    /// Starts a worker without waiting for it to be healthy (e.g. while NATS is down).
    pub async fn spawn(nats_url: &str, provider_url: &str, extra: &[(&str, &str)]) -> TestWorker {
        let mut env: HashMap<String, String> = [
            ("nats_url", nats_url),
            ("functions_provider_url", provider_url),
            ("pull_expires", "1s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_env(&env).expect("test worker config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the worker's health port");
        let health_url = format!(
            "http://{}/healthz",
            listener.local_addr().expect("worker address")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(ferry_queue_worker::run(config, listener, shutdown));
        TestWorker {
            health_url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port>/healthz`.
    pub fn health_url(&self) -> &str {
        &self.health_url
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = self.health_url.replace("/healthz", "/metrics");
        let response = http_client().get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("the metrics text")
    }

    /// `GET /healthz`: status and JSON body (status 0 when it does not answer).
    pub async fn health(&self) -> (u16, Value) {
        health(&self.health_url).await
    }

    /// Waits until `/healthz` answers 200.
    pub async fn wait_healthy(&self) {
        wait_healthy(&self.health_url).await;
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run()` to return (after [`begin_stop`](Self::begin_stop)).
    pub async fn join(&mut self) -> Result<(), WorkerError> {
        let task = self.task.take().expect("the worker was joined already");
        task.await.expect("the worker task panicked")
    }

    /// Signals shutdown and waits for `run()` to return.
    pub async fn stop(mut self) -> Result<(), WorkerError> {
        self.begin_stop();
        self.join().await
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the real `queue-worker` binary (built by [`crate::process::host_binary`]) with
/// `nats_url`, `provider_url`, a free `port` and `extra`, and waits until `/healthz` answers 200.
/// Kill it with [`ServiceProcess::kill`] to simulate a crash.
pub async fn start_process(
    nats_url: &str,
    provider_url: &str,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let port = free_port();
    let mut env: Vec<(String, String)> = [
        ("nats_url", nats_url),
        ("functions_provider_url", provider_url),
        ("pull_expires", "1s"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("port".to_string(), port.to_string()));
    // Building the binary (once per process) blocks: keep the runtime free meanwhile.
    let process = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        ServiceProcess::start("ferry-queue-worker", "queue-worker", &env)
    })
    .await
    .expect("starting queue-worker");
    wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await;
    process
}

async fn health(url: &str) -> (u16, Value) {
    match http_client().get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_healthy(url: &str) {
    wait_until(
        "the queue-worker reports healthy",
        READY_TIMEOUT,
        || async { health(url).await.0 == 200 },
    )
    .await;
}
