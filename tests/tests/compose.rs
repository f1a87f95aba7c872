//! The platform as its users start it: `make up` stages the static binaries, builds the
//! `FROM scratch` images and starts `compose.yaml` (NATS, gateway, two queue-workers, the
//! Docker provider, Prometheus); `/system/*` answers 401 without the basic-auth credentials
//! `make credentials` prints, or with wrong ones, and 200 with them; the echo function is
//! deployed (with the credentials) and called through the published gateway, sync and async
//! with a callback; a call queued while the workers are stopped survives `docker compose
//! down` and completes after the next `make up`, and so do the credentials; `make login`
//! writes them into faas-cli's config file as `faas-cli login` does.
//!
//! The stack is isolated from any other on the engine: the compose project, image tag,
//! provider instance and functions network are named after the test id, the ports are free
//! ones on 127.0.0.1, the provider's data folder is a temporary one, and every image,
//! container, volume and network compose creates carries `com.ferry.test=<id>` (through
//! `FERRY_LABEL_KEY`/`FERRY_LABEL_VALUE`), so the test's [`DockerGuard`] removes whatever
//! `docker compose down -v --rmi all` leaves, pass or fail.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use ferry_tests::auth::assert_protected;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::images::without_test_cargo_env;
use ferry_tests::{DockerGuard, FunctionImage, TEST_LABEL, free_port, http_client, wait_until};
use serde_json::{Value, json};
use tempfile::TempDir;

const MINUTE: Duration = Duration::from_secs(60);

/// The repository root: where `make up` runs.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// One compose stack of this test, with its own names, ports and data folder. Dropping it runs
/// `docker compose down -v --rmi all`; the [`DockerGuard`] removes the rest.
struct Stack {
    id: String,
    env: Vec<(&'static str, String)>,
    gateway_port: u16,
    prometheus_port: u16,
    _data_dir: TempDir,
    /// faas-cli's config folder for `make login` (`OPENFAAS_CONFIG`).
    openfaas_config: TempDir,
}

impl Stack {
    fn new(guard: &DockerGuard) -> Stack {
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
    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
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
    async fn run(&self, program: &str, args: &[&str]) -> String {
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

    async fn make(&self, target: &str) -> String {
        self.run("make", &["--no-print-directory", target]).await
    }

    async fn compose(&self, args: &[&str]) -> String {
        self.run("deploy/compose.sh", args).await
    }

    fn gateway(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_port)
    }

    fn prometheus(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.prometheus_port)
    }

    /// The compose network (`<project>_default`), which the test created through compose.
    fn network(&self) -> String {
        format!("{}_default", self.id)
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
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Basic-auth credentials for `/system/*`, once the gateway has them.
#[derive(Clone)]
struct Auth {
    user: String,
    password: String,
}

/// Adds the credentials to `request`.
fn with_auth(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    request.basic_auth(&auth.user, Some(&auth.password))
}

/// `make credentials`: the user and password the gateway generated.
async fn credentials(stack: &Stack) -> Auth {
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
async fn wait_healthy(guard: &DockerGuard, stack: &Stack) {
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
async fn host_address_on(guard: &DockerGuard, network: &str) -> IpAddr {
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
async fn assert_prometheus_targets(stack: &Stack) {
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
