//! Docker Swarm for a test: [`SwarmSession`] makes the engine a single-node swarm
//! (`docker swarm init --advertise-addr 127.0.0.1`) when it is not one, runs provider-swarm
//! in-process for the test's instance, and a helper container on the functions overlay
//! network through which the test reaches the tasks (their overlay IPs are not routable from
//! the host). On drop it removes the instance's services, waits for their containers to go,
//! removes the instance's Swarm secrets and configs, the helper containers and the network,
//! and leaves the swarm if it made it
//! (removing the `docker_gwbridge` network `swarm init` created).
//!
//! Swarm tests live in their own test binary (`tests/tests/swarm.rs`), one test function at a
//! time: a swarm leave while other tests' networks are in use once broke a compose network.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, LocalNodeState};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use tokio::sync::oneshot;

use crate::provider::TestProvider;
use crate::provider_suite::Reach;
use crate::{DockerGuard, INSTANCE_LABEL, TEST_LABEL};

/// The swarm a test runs in; cleans up on drop.
pub struct SwarmSession {
    id: String,
    network: String,
    made: bool,
}

impl SwarmSession {
    /// Joins or makes the swarm for `guard`'s test.
    pub async fn begin(guard: &DockerGuard) -> SwarmSession {
        let info = guard.docker().info().await.expect("docker info");
        let state = info.swarm.and_then(|s| s.local_node_state);
        let made = state != Some(LocalNodeState::ACTIVE);
        if made {
            docker_cli(&["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .unwrap_or_else(|e| panic!("docker swarm init: {e}"));
        }
        SwarmSession {
            id: guard.id().to_string(),
            network: format!("{}-ov", guard.id()),
            made,
        }
    }

    /// The functions overlay network of the test's provider.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// provider-swarm for the test's instance, in-process on a free port.
    pub async fn provider(&self) -> TestProvider {
        let env: HashMap<String, String> = [
            ("instance", self.id.as_str()),
            ("functions_network", self.network.as_str()),
            ("stop_timeout", "2s"),
            ("reconcile_interval", "1s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = ferry_provider_swarm::Config::from_env(&env).expect("provider-swarm config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind provider-swarm");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = ferry_provider_swarm::run(config, listener, shutdown).await {
                panic!("provider-swarm failed: {e}");
            }
        });
        TestProvider::spawned(base, self.network.clone(), stop, task).await
    }

    /// A helper container from `image` (which has `/bin/busybox`) on the overlay network,
    /// carrying the test label, to reach tasks from: a [`Reach::Via`] it.
    pub async fn helper(&self, guard: &DockerGuard, image: &str) -> Reach {
        let name = format!("{}-helper", self.id);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(guard.labels()),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let docker = guard.docker().clone();
        let id = docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("creating the overlay helper: {e}"))
            .id;
        docker
            .start_container(&id, None)
            .await
            .unwrap_or_else(|e| panic!("starting the overlay helper: {e}"));
        Reach::Via(docker, id)
    }
}

impl Drop for SwarmSession {
    fn drop(&mut self) {
        let instance = format!("label={INSTANCE_LABEL}={}", self.id);
        let test = format!("label={TEST_LABEL}={}", self.id);
        let services = list(&["service", "ls", "-q", "--filter", &instance]);
        if !services.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(services.iter().map(String::as_str));
            report(docker_cli(&args));
        }
        // The tasks' containers go once Swarm has stopped them.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !list(&["ps", "-aq", "--filter", &instance]).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        // Secrets and configs go once no service references them.
        for kind in ["secret", "config"] {
            let objects = list(&[kind, "ls", "-q", "--filter", &instance]);
            if !objects.is_empty() {
                let mut args = vec![kind, "rm"];
                args.extend(objects.iter().map(String::as_str));
                report(docker_cli(&args));
            }
        }
        let helpers = list(&["ps", "-aq", "--filter", &test]);
        if !helpers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(helpers.iter().map(String::as_str));
            report(docker_cli(&args));
        }
        let networks = list(&["network", "ls", "-q", "--filter", &instance]);
        if !networks.is_empty() {
            let mut args = vec!["network", "rm"];
            args.extend(networks.iter().map(String::as_str));
            report(docker_cli(&args));
        }
        if self.made {
            report(docker_cli(&["swarm", "leave", "--force"]));
            // `swarm init` made it; nothing else uses it once the swarm is gone.
            report(docker_cli(&["network", "rm", "docker_gwbridge"]));
        }
    }
}

fn report(r: Result<String, String>) {
    if let Err(e) = r {
        eprintln!("ferry-tests: swarm clean-up: {e}");
    }
}

fn list(args: &[&str]) -> Vec<String> {
    docker_cli(args)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Runs the docker CLI; its stdout, or what went wrong.
fn docker_cli(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
