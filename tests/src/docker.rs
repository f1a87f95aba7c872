//! The Docker engine in tests: connecting, labelling, running containers, and removing
//! everything a test created when its [`DockerGuard`] drops.

mod cleanup;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

pub use cleanup::{leftovers, sweep_stale};

/// Label on every Docker object the harness creates; the value is the test id.
pub const TEST_LABEL: &str = "com.ferry.test";
/// Label a provider instance started by a test puts on what it creates; the value is the test id.
pub const INSTANCE_LABEL: &str = "com.ferry.instance";
/// Every test id starts with this, followed by the test process's pid.
const ID_PREFIX: &str = "ferry-test-";

/// Connects to the local Docker engine (`DOCKER_HOST`, else `/var/run/docker.sock`) and
/// negotiates the API version (bollard speaks a newer API than Debian's engine 20.10).
///
/// Panics with instructions when the engine does not answer.
pub async fn docker() -> Docker {
    try_docker().await.unwrap_or_else(|e| {
        panic!(
            "the Docker engine does not answer: {e}. Is the Docker engine running? \
             ferry's end-to-end tests need it at /var/run/docker.sock (or DOCKER_HOST): install \
             it (`apt install docker.io`), start it (`systemctl start docker`) and let this user \
             use the socket (group `docker`)."
        )
    })
}

async fn try_docker() -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await
}

/// A fresh test id: `ferry-test-<pid>-<counter>-<random>`.
pub fn new_test_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u32 = rand::random();
    format!("{ID_PREFIX}{}-{n}-{random:08x}", std::process::id())
}

/// One test's claim on Docker: a unique id, and on drop the forced removal of every container,
/// network, image and volume labelled `com.ferry.test=<id>` or `com.ferry.instance=<id>`.
///
/// The removal runs on its own thread with its own runtime, so dropping works inside or outside
/// a tokio runtime and while a test panics.
pub struct DockerGuard {
    id: String,
    docker: Docker,
}

impl DockerGuard {
    /// Connects (see [`docker()`]), sweeps leftovers of dead test processes once per process,
    /// and allocates a new test id.
    pub async fn new() -> DockerGuard {
        static SWEPT: OnceCell<()> = OnceCell::const_new();
        let docker = docker().await;
        SWEPT.get_or_init(|| sweep_stale(&docker)).await;
        DockerGuard {
            id: new_test_id(),
            docker,
        }
    }

    /// The test id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The engine connection.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `{com.ferry.test: <id>}`, for objects the test creates itself.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(TEST_LABEL.to_owned(), self.id.clone())])
    }

    /// Creates a bridge network `<id>-<suffix>` carrying the test label; returns its name.
    pub async fn create_network(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.id);
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .unwrap_or_else(|e| panic!("creating network {name}: {e}"));
        name
    }

    /// Creates and starts a container carrying the test label, with port 8080 published on a
    /// random port of 127.0.0.1.
    pub async fn run(&self, spec: ContainerSpec) -> RunningContainer {
        let name = format!("{}-{}", self.id, spec.name);
        let mut labels = self.labels();
        labels.extend(spec.labels);
        let port_bindings = HashMap::from([(
            "8080/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some(String::new()),
            }]),
        )]);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(vec!["8080/tcp".to_owned()]),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("creating container {name} from {}: {e}", spec.image))
            .id;
        self.docker
            .start_container(&id, None)
            .await
            .unwrap_or_else(|e| panic!("starting container {name}: {e}"));
        let inspected = self
            .docker
            .inspect_container(&id, None)
            .await
            .unwrap_or_else(|e| panic!("inspecting container {name}: {e}"));
        let host_port = inspected
            .network_settings
            .and_then(|s| s.ports)
            .and_then(|mut ports| ports.remove("8080/tcp").flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("container {name} has no host port for 8080/tcp"));
        RunningContainer {
            id,
            name,
            host_port,
        }
    }

    /// Waits until the watchdog in `container` answers `GET /_/ready` with 200; after `timeout`
    /// panics with the container's logs.
    pub async fn wait_ready(&self, container: &RunningContainer, timeout: Duration) {
        let client = crate::http_client();
        let url = format!("{}/_/ready", container.url());
        let ready = tokio::time::timeout(timeout, async {
            loop {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => return,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await;
        if ready.is_err() {
            panic!(
                "{} not ready within {timeout:?}; its logs:\n{}",
                container.name,
                self.logs(&container.id).await
            );
        }
    }

    /// Everything the container wrote to stdout and stderr so far (for failure messages).
    pub async fn logs(&self, container: &str) -> String {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut stream = self.docker.logs(container, Some(options));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.push_str(&chunk.to_string()),
                Err(e) => {
                    out.push_str(&format!("(reading logs: {e})"));
                    break;
                }
            }
        }
        out
    }
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let id = self.id.clone();
        let cleaner = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| vec![format!("building a runtime: {e}")])?;
            runtime.block_on(async {
                // A fresh connection: the test's runtime, which owns the pooled ones, is blocked
                // in this drop.
                let docker = try_docker().await.map_err(|e| vec![e.to_string()])?;
                let errors = tokio::time::timeout(
                    Duration::from_secs(120),
                    cleanup::remove_all(&docker, &id),
                )
                .await
                .unwrap_or_else(|_| vec!["timed out after 120 s".to_owned()]);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors)
                }
            })
        });
        let errors = match cleaner.join() {
            Ok(Ok(())) => return,
            Ok(Err(errors)) => errors,
            Err(_) => vec!["the clean-up thread panicked".to_owned()],
        };
        eprintln!(
            "ferry-tests: could not remove everything labelled {TEST_LABEL}={0} or \
             {INSTANCE_LABEL}={0}:\n  {1}",
            self.id,
            errors.join("\n  ")
        );
    }
}

/// What [`DockerGuard::run`] starts.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// Image reference, e.g. [`FunctionImage::tag`](crate::FunctionImage::tag).
    pub image: String,
    /// Appended to the test id to name the container.
    pub name: String,
    /// Network to attach to (`None`: the default bridge).
    pub network: Option<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Labels besides the test label.
    pub labels: HashMap<String, String>,
}

impl ContainerSpec {
    /// A container `name` from `image` on the default bridge.
    pub fn new(image: impl Into<String>, name: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// Attaches the container to `network`.
    pub fn network(mut self, network: impl Into<String>) -> ContainerSpec {
        self.network = Some(network.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ContainerSpec {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A started container.
#[derive(Clone, Debug)]
pub struct RunningContainer {
    /// Container id.
    pub id: String,
    /// Container name (`<test id>-<spec name>`).
    pub name: String,
    /// Host port on 127.0.0.1 published for the container's port 8080.
    pub host_port: u16,
}

impl RunningContainer {
    /// `http://127.0.0.1:<host port>`: the watchdog's base URL from the host.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.host_port)
    }
}
