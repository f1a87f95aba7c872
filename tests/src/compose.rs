//! A compose stack of ferry started the way users start it (`make up`), isolated for one test:
//! the compose project, image tag, provider instance and functions network are named after
//! the test id, the ports are free ones on 127.0.0.1, the provider's data folder is a
//! temporary one, and every image, container, volume and network compose creates carries
//! `com.ferry.test=<id>` (through `FERRY_LABEL_KEY`/`FERRY_LABEL_VALUE`), so the test's
//! [`DockerGuard`] removes whatever `docker compose down -v --rmi all` (run when the
//! [`Stack`] drops) leaves, pass or fail.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use tempfile::TempDir;

use crate::images::without_test_cargo_env;
use serde_json::Value;

use crate::{DockerGuard, TEST_LABEL, free_port, http_client, wait_until};

const MINUTE: Duration = Duration::from_secs(60);

/// The repository root: where `make up` runs.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// One compose stack of this test, with its own names, ports and data folder. Dropping it runs
/// `docker compose down -v --rmi all`; the [`DockerGuard`] removes the rest.
pub struct Stack {
    /// The test id: compose project, image tag, provider instance.
    pub id: String,
    env: Vec<(&'static str, String)>,
    gateway_port: u16,
    prometheus_port: u16,
    _data_dir: TempDir,
    /// faas-cli's config folder for `make login` (`OPENFAAS_CONFIG`).
    pub openfaas_config: TempDir,
}

impl Stack {
    /// A stack named after `guard`'s test id, on free ports, with a temporary data folder.
    pub fn new(guard: &DockerGuard) -> Stack {
        let id = guard.id().to_owned();
        let data_dir = tempfile::Builder::new()
            .prefix("ferry-compose-")
            .tempdir()
            .expect("temporary data folder");
        let openfaas_config = tempfile::tempdir().expect("temporary faas-cli config folder");
        let gateway_port = free_port();
        let prometheus_port = free_port();
        let env = vec![
            ("COMPOSE_PROJECT_NAME", id.clone()),
            ("FERRY_IMAGE_TAG", id.clone()),
            ("FERRY_INSTANCE", id.clone()),
            ("FERRY_FUNCTIONS_NETWORK", format!("{id}-fn")),
            ("FERRY_GATEWAY_ADDRESS", "127.0.0.1".to_owned()),
            ("FERRY_GATEWAY_PORT", gateway_port.to_string()),
            ("FERRY_PROMETHEUS_PORT", prometheus_port.to_string()),
            ("FERRY_DATA_DIR", data_dir.path().display().to_string()),
            ("FERRY_LABEL_KEY", TEST_LABEL.to_owned()),
            ("FERRY_LABEL_VALUE", id.clone()),
            (
                "OPENFAAS_CONFIG",
                openfaas_config.path().display().to_string(),
            ),
        ];
        Stack {
            id,
            env,
            gateway_port,
            prometheus_port,
            _data_dir: data_dir,
            openfaas_config,
        }
    }

    /// `program args` in the repository root with the stack's variables, without the make
    /// and cargo variables of an enclosing `make test` / `cargo test` (with them, the `make
    /// static` of `make up` would recompile what a build from a shell made, and back).
    pub fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        without_test_cargo_env(&mut command)
            .args(args)
            .current_dir(repo())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(std::process::Stdio::null());
        command
    }

    /// Runs `program args` to completion; panics with its output if it fails. Returns stdout.
    pub async fn run(&self, program: &str, args: &[&str]) -> String {
        let command = self.command(program, args);
        let what = format!("{program} {}", args.join(" "));
        let started = Instant::now();
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            tail(&stdout, 80),
            tail(&stderr, 80)
        );
        eprintln!("compose test: {what}: {:.1?}", started.elapsed());
        stdout
    }

    /// `make <target>` with the stack's variables.
    pub async fn make(&self, target: &str) -> String {
        self.run("make", &["--no-print-directory", target]).await
    }

    /// `deploy/compose.sh <args>` with the stack's variables.
    pub async fn compose(&self, args: &[&str]) -> String {
        self.run("deploy/compose.sh", args).await
    }

    /// The published gateway's URL for `path` (`http://127.0.0.1:<port><path>`).
    pub fn gateway(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_port)
    }

    /// Prometheus' URL for `path`.
    pub fn prometheus(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.prometheus_port)
    }

    /// The compose network (`<project>_default`), which the test created through compose.
    pub fn network(&self) -> String {
        format!("{}_default", self.id)
    }

    /// Sets one more variable for every later command (e.g. `FERRY_TLS=1`).
    pub fn set(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let down = self
            .command(
                "deploy/compose.sh",
                &["down", "-v", "--rmi", "all", "--remove-orphans", "-t", "10"],
            )
            .output();
        match down {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "compose test: docker compose down failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("compose test: running docker compose down: {e}"),
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Basic-auth credentials for `/system/*`, once the gateway has them.
#[derive(Clone)]
pub struct Auth {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

/// Adds the credentials to `request`.
pub fn with_auth(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    request.basic_auth(&auth.user, Some(&auth.password))
}

/// `make credentials`: the user and password the gateway generated.
pub async fn credentials(stack: &Stack) -> Auth {
    let out = stack.make("credentials").await;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in make credentials' output:\n{out}"))
    };
    Auth {
        user: field("user:"),
        password: field("password:"),
    }
}

/// Every container of the stack that has a health check reports `healthy`, and there are two
/// queue-workers.
pub async fn wait_healthy(guard: &DockerGuard, stack: &Stack) {
    let docker = guard.docker();
    let project = format!("com.docker.compose.project={}", stack.id);
    wait_until("every service of the stack is healthy", MINUTE, || async {
        let filters = std::collections::HashMap::from([("label", vec![project.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let Ok(containers) = docker.list_containers(Some(options)).await else {
            return false;
        };
        let workers = containers
            .iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get("com.docker.compose.service"))
                    .is_some_and(|s| s == "queue-worker")
            })
            .count();
        if containers.len() != 6 || workers != 2 {
            return false;
        }
        for c in &containers {
            let id = c.id.as_deref().unwrap_or_default();
            let Ok(inspected) = docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
            else {
                return false;
            };
            let health = inspected
                .state
                .and_then(|s| s.health)
                .and_then(|h| h.status);
            if health.is_some_and(|status| status.to_string() != "healthy") {
                return false;
            }
        }
        true
    })
    .await;
}

/// The host's address on the compose network: where containers of the stack reach the test.
pub async fn host_address_on(guard: &DockerGuard, network: &str) -> IpAddr {
    let inspected = guard
        .docker()
        .inspect_network(network, None)
        .await
        .unwrap_or_else(|e| panic!("inspecting network {network}: {e}"));
    inspected
        .ipam
        .and_then(|ipam| ipam.config)
        .into_iter()
        .flatten()
        .find_map(|c| c.gateway.and_then(|g| g.parse::<IpAddr>().ok()))
        .unwrap_or_else(|| panic!("network {network} has no gateway address"))
}

/// Prometheus has found every ferry service (both workers through DNS) and scrapes each of
/// them, the gateway's `/metrics` included, and itself.
pub async fn assert_prometheus_targets(stack: &Stack) {
    let client = http_client();
    let url = stack.prometheus("/api/v1/targets");
    let mut last = Value::Null;
    let found = tokio::time::timeout(MINUTE, async {
        loop {
            let body = match client.get(&url).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if let Some(body) = body {
                let targets = body["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let up = |job: &str| {
                    targets
                        .iter()
                        .filter(|t| t["labels"]["job"] == job && t["health"] == "up")
                        .count()
                };
                last = body;
                if up("gateway") == 1
                    && up("provider-docker") == 1
                    && up("queue-worker") == 2
                    && up("prometheus") == 1
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "Prometheus did not scrape every ferry target within a minute; last answer: {last}"
    );
}
