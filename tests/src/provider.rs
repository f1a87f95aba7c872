//! `provider-docker` started in-process for a test, on a free port, scoped to the test's id:
//! its containers and network carry `com.ferry.instance=<id>` and go when the test's
//! [`DockerGuard`] drops. With `basic_auth` on (extra env `basic_auth`, `secret_mount_path`),
//! [`TestProvider::with_credentials`] makes [`TestProvider::call`] and its users send them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::FunctionStatus;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{DockerGuard, http_client, wait_until};

/// A running provider; stops on drop.
pub struct TestProvider {
    base: String,
    network: String,
    data_dir: PathBuf,
    _data: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    client: reqwest::Client,
    /// User and password sent with [`TestProvider::call`], if any.
    credentials: Option<(String, String)>,
}

impl TestProvider {
    /// A provider in `published` endpoint mode (replicas on `127.0.0.1:<port>`).
    pub async fn start(guard: &DockerGuard) -> TestProvider {
        TestProvider::start_with(guard, &[]).await
    }

    /// A provider with extra (or overriding) environment variables, e.g.
    /// `[("endpoint_mode", "network")]`.
    pub async fn start_with(guard: &DockerGuard, extra: &[(&str, &str)]) -> TestProvider {
        let data = tempfile::tempdir().expect("temporary data dir");
        let path = data.path().to_path_buf();
        let mut p = TestProvider::start_in(guard, &path, extra).await;
        p._data = Some(data);
        p
    }

    /// A provider keeping its state in `data_dir` (to test restarts).
    pub async fn start_in(
        guard: &DockerGuard,
        data_dir: &Path,
        extra: &[(&str, &str)],
    ) -> TestProvider {
        let network = format!("{}-fn", guard.id());
        let mut env: HashMap<String, String> = [
            ("instance", guard.id()),
            ("functions_network", network.as_str()),
            ("data_dir", data_dir.to_str().expect("utf-8 temp path")),
            ("stop_timeout", "2s"),
            ("reconcile_interval", "1s"),
            ("probe_cache", "100ms"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = ferry_provider_docker::Config::from_env(&env).expect("test provider config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind provider");
        let base = format!(
            "http://{}",
            listener.local_addr().expect("provider address")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = ferry_provider_docker::run(config, listener, shutdown).await {
                panic!("provider-docker failed: {e}");
            }
        });
        let p = TestProvider {
            base,
            network,
            data_dir: data_dir.to_path_buf(),
            _data: None,
            stop: Some(stop),
            task: Some(task),
            client: http_client(),
            credentials: None,
        };
        let client = p.client.clone();
        let health = p.url("/healthz");
        wait_until(
            "provider-docker answers /healthz",
            Duration::from_secs(30),
            || crate::answers_ok(&client, &health),
        )
        .await;
        p
    }

    /// A handle on a provider that runs elsewhere (e.g. a child process) at `base`
    /// (`http://127.0.0.1:<port>`), keeping its state in `data_dir`; dropping it stops nothing.
    pub fn remote(base: String, network: String, data_dir: &Path) -> TestProvider {
        TestProvider {
            base,
            network,
            data_dir: data_dir.to_path_buf(),
            _data: None,
            stop: None,
            task: None,
            client: http_client(),
            credentials: None,
        }
    }

    /// A provider served by `task` at `base` (stopped through `stop`), once it answers
    /// `/healthz`: for backends other than provider-docker (see [`crate::swarm`]).
    pub async fn spawned(
        base: String,
        network: String,
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    ) -> TestProvider {
        let mut p = TestProvider::remote(base, network, Path::new("/nonexistent"));
        p.stop = Some(stop);
        p.task = Some(task);
        p.wait_healthy().await;
        p
    }

    async fn wait_healthy(&self) {
        let health = self.url("/healthz");
        wait_until(
            "the provider answers /healthz",
            Duration::from_secs(30),
            || crate::answers_ok(&self.client, &health),
        )
        .await;
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The functions network this provider uses.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Sends `user` and `password` (basic auth) with every [`TestProvider::call`].
    pub fn with_credentials(mut self, user: &str, password: &str) -> TestProvider {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    /// The provider's data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Sends a request with a JSON (or raw) body; returns status and parsed JSON body
    /// (`Value::Null` when the body is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some((user, password)) = &self.credentials {
            req = req.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /system/function/{name}`, or None on 404.
    pub async fn status(&self, name: &str) -> Option<FunctionStatus> {
        let (code, body) = self
            .call("GET", &format!("/system/function/{name}"), None)
            .await;
        match code {
            200 => Some(serde_json::from_value(body).expect("FunctionStatus")),
            404 => None,
            other => panic!("GET /system/function/{name}: unexpected {other}: {body}"),
        }
    }

    /// Waits until `name` has `n` desired replicas and `n` ready ones.
    pub async fn wait_available(&self, name: &str, n: u64) {
        wait_until(
            &format!("{name} has {n} available replicas"),
            Duration::from_secs(60),
            || async {
                self.status(name)
                    .await
                    .is_some_and(|s| s.replicas == n && s.available_replicas == n)
            },
        )
        .await;
    }

    /// `POST /system/scale-function/{name}` with `replicas`; returns the status code.
    pub async fn scale(&self, name: &str, replicas: u64) -> u16 {
        let body = serde_json::json!({"serviceName": name, "replicas": replicas}).to_string();
        self.call(
            "POST",
            &format!("/system/scale-function/{name}"),
            Some(&body),
        )
        .await
        .0
    }

    /// The provider's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("metrics text")
    }

    /// Stops the provider and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Every container (running or not) the test's provider made for function `name`.
pub async fn function_containers(
    guard: &DockerGuard,
    name: &str,
) -> Vec<bollard::models::ContainerSummary> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{}={}", ferry_proto::labels::FERRY_INSTANCE, guard.id()),
            format!("{}={name}", ferry_proto::labels::FUNCTION),
        ],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    guard
        .docker()
        .list_containers(Some(options))
        .await
        .expect("listing containers")
}

/// The ready replica addresses of `name`, from `GET /system/endpoints/{name}`.
pub async fn ready_addresses(provider: &TestProvider, name: &str) -> Vec<String> {
    let (code, body) = provider
        .call("GET", &format!("/system/endpoints/{name}"), None)
        .await;
    assert_eq!(code, 200, "endpoints of {name}: {body}");
    let endpoints: ferry_proto::FunctionEndpoints =
        serde_json::from_value(body).expect("endpoints");
    endpoints
        .endpoints
        .into_iter()
        .filter(|e| e.ready)
        .map(|e| e.address)
        .collect()
}

/// The value of the sample written exactly `series` (name and labels, e.g.
/// `provider_cold_starts_total{function_name="echo.openfaas-fn"}`) in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
