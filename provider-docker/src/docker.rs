//! The Docker engine, seen as a place to run function replicas.
//!
//! A replica is a container labelled `com.openfaas.function=<name>`,
//! `com.openfaas.namespace=<namespace>` and `com.ferry.instance=<instance>`, created from the
//! function's image on the functions network, with `docker-init` as PID 1 (so zombies of
//! fork-mode functions are reaped) and the watchdog listening on port 8080. The deployment's
//! limits, read-only root, privileges and secret mounts come from [`crate::spec`], its user
//! from [`crate::confine`] (the image's `USER` is read to keep it when it sets one). The
//! watchdog's metrics port (8081) is reachable the same way as port 8080: published on
//! `127.0.0.1:<random>` too, or at the container's address.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, HostConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use ferry_proto::probe::ReadinessProbe;
use ferry_proto::{FunctionRef, Name, labels};
use futures_util::StreamExt;

use crate::config::{Config, EndpointMode, PullPolicy};
use crate::error::ProviderError;
use crate::store::Desired;

/// Port the watchdog listens on inside every function container.
pub const WATCHDOG_PORT: u16 = 8080;
/// Port of the watchdog's `GET /metrics` inside every function container.
pub const METRICS_PORT: u16 = 8081;

/// One container of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Container id.
    pub id: String,
    /// Whether the container is running (not paused).
    pub running: bool,
    /// Whether the container is paused: a frozen replica (see [`crate::freeze`]).
    pub paused: bool,
    /// Deployment generation it was created from.
    pub generation: u64,
    /// `host:port` of its watchdog, per the endpoint mode (None when neither running nor
    /// paused).
    pub address: Option<String>,
    /// `host:port` of its watchdog's metrics listener, reached the same way (None when not
    /// running, or for a container made before the port was published).
    pub metrics_address: Option<String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Its readiness probe, from the function's annotations (container labels
    /// `com.openfaas.annotations.*`) when it was created.
    pub probe: ReadinessProbe,
}

/// A connection to the Docker engine, scoped to one provider instance.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    instance: String,
    network: String,
    mode: EndpointMode,
    pull_policy: PullPolicy,
    stop_timeout: Duration,
    spec: crate::spec::SpecOptions,
}

impl Engine {
    /// Connects with the local defaults (`DOCKER_HOST` or `/var/run/docker.sock`) and
    /// negotiates the API version (the engine may be older than bollard's default).
    pub async fn connect(config: &Config) -> Result<Engine, DockerError> {
        let docker = ferry_provider_core::engine::connect().await?;
        Ok(Engine {
            docker,
            instance: config.instance.clone(),
            network: config.network.clone(),
            mode: config.endpoint_mode,
            pull_policy: config.pull_policy,
            stop_timeout: config.stop_timeout,
            spec: crate::spec::SpecOptions::from_config(config),
        })
    }

    /// The underlying Docker client (for the logs API).
    pub(crate) fn client(&self) -> &Docker {
        &self.docker
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        ferry_provider_core::engine::ping(&self.docker).await
    }

    /// Creates the functions network if it does not exist.
    pub async fn ensure_network(&self) -> Result<(), DockerError> {
        ferry_provider_core::network::ensure_network(
            &self.docker,
            &self.network,
            "bridge",
            &self.instance,
        )
        .await
        .map(|_| ())
    }

    /// Makes sure the engine has `image`, pulling it when the policy allows.
    pub async fn ensure_image(&self, image: &str) -> Result<(), ProviderError> {
        let unavailable = |reason: String| {
            ProviderError::from(ferry_provider_core::ApiError::ImageUnavailable {
                image: image.to_string(),
                reason,
            })
        };
        let present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => return Err(e.into()),
        };
        match (self.pull_policy, present) {
            (PullPolicy::Never, true) | (PullPolicy::IfNotPresent, true) => return Ok(()),
            (PullPolicy::Never, false) => {
                return Err(unavailable(
                    "it is not present on the Docker engine and image_pull_policy is Never".into(),
                ));
            }
            _ => {}
        }
        let (repo, tag) = split_image(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                let reason = match e {
                    DockerError::DockerResponseServerError { message, .. } => message,
                    DockerError::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                let what = if present {
                    "pulling it failed"
                } else {
                    "it is not present on the Docker engine and pulling it failed"
                };
                return Err(unavailable(format!("{what}: {reason}")));
            }
        }
        tracing::info!(image, "pulled image");
        Ok(())
    }

    /// Every container of this instance, or only those of `f`, grouped by function.
    pub async fn replicas(
        &self,
        f: Option<&FunctionRef>,
    ) -> Result<Vec<(FunctionRef, Replica)>, DockerError> {
        let mut label_filters = vec![format!("{}={}", labels::FERRY_INSTANCE, self.instance)];
        if let Some(f) = f {
            label_filters.push(format!("{}={}", labels::FUNCTION, f.name));
            label_filters.push(format!("{}={}", labels::NAMESPACE, f.namespace));
        }
        let filters = HashMap::from([("label", label_filters)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| self.replica(c))
            .collect())
    }

    /// Every container of this instance (running or not, replicas or not): its id and the
    /// function its labels name, if they name one.
    pub async fn instance_containers(
        &self,
    ) -> Result<Vec<(String, Option<FunctionRef>)>, DockerError> {
        let filters = HashMap::from([(
            "label",
            vec![format!("{}={}", labels::FERRY_INSTANCE, self.instance)],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let f = c.labels.as_ref().and_then(|l| {
                    Some(FunctionRef::new(
                        Name::new(l.get(labels::FUNCTION)?.as_str()).ok()?,
                        Name::new(l.get(labels::NAMESPACE)?.as_str()).ok()?,
                    ))
                });
                Some((c.id?, f))
            })
            .collect())
    }

    fn replica(&self, c: ContainerSummary) -> Option<(FunctionRef, Replica)> {
        let labels = c.labels.as_ref()?;
        let f = FunctionRef::new(
            Name::new(labels.get(labels::FUNCTION)?.as_str()).ok()?,
            Name::new(labels.get(labels::NAMESPACE)?.as_str()).ok()?,
        );
        let generation = labels
            .get(labels::FERRY_GENERATION)
            .and_then(|g| g.parse().ok())?;
        let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
        let paused = c.state == Some(ContainerSummaryStateEnum::PAUSED);
        let address_of = |port: u16| {
            if !running && !paused {
                return None;
            }
            match self.mode {
                EndpointMode::Published => c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.private_port == port && p.public_port.is_some())
                    .map(|p| format!("127.0.0.1:{}", p.public_port.unwrap_or_default())),
                EndpointMode::Network => c
                    .network_settings
                    .as_ref()
                    .and_then(|n| n.networks.as_ref())
                    .and_then(|n| n.get(&self.network))
                    .and_then(|e| e.ip_address.clone())
                    .filter(|ip| !ip.is_empty())
                    .map(|ip| format!("{ip}:{port}")),
            }
        };
        let probe = ReadinessProbe::of(|key| {
            labels
                .get(&format!("{}{key}", labels::ANNOTATION_PREFIX))
                .map(String::as_str)
        });
        let replica = Replica {
            probe,
            address: address_of(WATCHDOG_PORT),
            metrics_address: address_of(METRICS_PORT),
            id: c.id?,
            running,
            paused,
            generation,
            created: c.created.unwrap_or_default(),
        };
        Some((f, replica))
    }

    /// Creates and starts one replica of `f`. Returns the container id.
    pub async fn start_replica(
        &self,
        f: &FunctionRef,
        want: &Desired,
    ) -> Result<String, DockerError> {
        let d = &want.deployment;
        let mut container_labels: HashMap<String, String> = d.labels.clone().into_iter().collect();
        for (k, v) in &d.annotations {
            container_labels.insert(format!("{}{k}", labels::ANNOTATION_PREFIX), v.clone());
        }
        container_labels.insert(labels::FUNCTION.into(), f.name.to_string());
        container_labels.insert(labels::NAMESPACE.into(), f.namespace.to_string());
        container_labels.insert(labels::FERRY_INSTANCE.into(), self.instance.clone());
        container_labels.insert(labels::FERRY_GENERATION.into(), want.generation.to_string());

        let ports = [WATCHDOG_PORT, METRICS_PORT].map(|p| format!("{p}/tcp"));
        let port_bindings = (self.mode == EndpointMode::Published).then(|| {
            ports
                .iter()
                .map(|port| {
                    let binding = PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    };
                    (port.clone(), Some(vec![binding]))
                })
                .collect::<HashMap<_, _>>()
        });
        let mut host_config = HostConfig {
            network_mode: Some(self.network.clone()),
            port_bindings,
            init: Some(true),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            ..Default::default()
        };
        self.spec.apply(&mut host_config, f, d);
        let user = self.spec.user(f, d);
        let image_user = if user.needs_image_user() {
            self.image_user(&d.image).await?
        } else {
            None
        };
        let body = ContainerCreateBody {
            image: Some(d.image.clone()),
            user: user.resolve(image_user.as_deref()),
            env: Some(
                d.process_env()
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(container_labels),
            exposed_ports: Some(ports.to_vec()),
            stop_timeout: Some(self.stop_timeout.as_secs() as i64),
            host_config: Some(host_config),
            ..Default::default()
        };
        let suffix: u32 = rand::random();
        let name = format!(
            "{}-{}-{}-{:08x}",
            self.instance, f.name, f.namespace, suffix
        );
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.force_remove(&created.id).await;
            return Err(e);
        }
        tracing::info!(function = %f, container = %name, generation = want.generation, "started replica");
        Ok(created.id)
    }

    /// The `USER` of the image `image` on the engine (`None` or empty: it names none).
    async fn image_user(&self, image: &str) -> Result<Option<String>, DockerError> {
        let inspect = self.docker.inspect_image(image).await?;
        Ok(inspect.config.and_then(|c| c.user))
    }

    /// Starts an existing (stopped) container again: a parked replica. Already running is
    /// fine.
    pub async fn start_existing(&self, id: &str) -> Result<(), DockerError> {
        unless_already(self.docker.start_container(id, None).await)
    }

    /// Freezes a running container (`docker pause`: its processes get no CPU, its memory
    /// stays).
    pub async fn pause(&self, id: &str) -> Result<(), DockerError> {
        self.docker.pause_container(id).await
    }

    /// Thaws a paused container (`docker unpause`).
    pub async fn unpause(&self, id: &str) -> Result<(), DockerError> {
        self.docker.unpause_container(id).await
    }

    /// Stops a container gracefully (SIGTERM, then SIGKILL after the stop timeout) and keeps
    /// it. Already stopped is fine; a paused one is stopped too (the engine thaws it for the
    /// signal).
    pub async fn stop(&self, id: &str) -> Result<(), DockerError> {
        let t = i32::try_from(self.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        unless_already(self.docker.stop_container(id, Some(options)).await)
    }

    /// Stops a replica gracefully (SIGTERM, then SIGKILL after the stop timeout) and removes it.
    pub async fn stop_and_remove(&self, id: &str) -> Result<(), DockerError> {
        match self.stop(id).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                tracing::warn!(container = id, error = %e, "graceful stop failed; removing by force")
            }
        }
        self.force_remove(id).await
    }

    async fn force_remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Removal already in progress.
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Splits an image reference into repository and tag for a pull (`latest` when neither a
/// tag nor a digest is given: an empty tag would pull every tag of the repository).
pub fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// `result`, with the engine's `304` (the container is already started, or stopped) as
/// success.
fn unless_already(result: Result<(), DockerError>) -> Result<(), DockerError> {
    match result {
        Err(DockerError::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(split_image("alpine"), ("alpine", "latest"));
        assert_eq!(split_image("alpine:3.19"), ("alpine", "3.19"));
        assert_eq!(
            split_image("ghcr.io/openfaas/figlet:latest"),
            ("ghcr.io/openfaas/figlet", "latest")
        );
        assert_eq!(
            split_image("127.0.0.1:5000/fn"),
            ("127.0.0.1:5000/fn", "latest")
        );
        assert_eq!(
            split_image("127.0.0.1:5000/fn:v2"),
            ("127.0.0.1:5000/fn", "v2")
        );
        assert_eq!(split_image("fn@sha256:abc"), ("fn@sha256:abc", ""));
    }
}
