//! The Docker engine as a swarm manager: services, tasks, the functions overlay network and
//! images, scoped to one provider instance (`com.ferry.instance=<instance>`).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{Service, ServiceSpec, TaskState};
use bollard::query_parameters::{
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use ferry_proto::{FunctionDeployment, FunctionRef, labels};

use crate::config::Config;
use crate::error::SwarmError;
use crate::spec::{CREATED_LABEL, DEPLOYMENT_LABEL};

/// A function's service, as read back from Swarm.
#[derive(Debug, Clone)]
pub struct FunctionService {
    /// Service id.
    pub id: String,
    /// Version index, for updates.
    pub version: u64,
    /// The function.
    pub function: FunctionRef,
    /// Its deployment, from the `com.ferry.deployment` label.
    pub deployment: FunctionDeployment,
    /// Desired replicas.
    pub replicas: u64,
    /// First deploy's time.
    pub created_at: String,
    /// The whole spec, to change and send back.
    pub spec: ServiceSpec,
}

/// One running task of a function.
#[derive(Debug, Clone)]
pub struct RunningTask {
    /// Task id.
    pub id: String,
    /// Its container's address on the functions network, `ip:8080`, when known.
    pub address: Option<String>,
    /// Its container, when Swarm reports it.
    pub container: Option<String>,
}

/// A connection to the swarm manager.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    instance: String,
    network: String,
}

impl Engine {
    /// Connects with the local defaults and negotiates the API version.
    pub async fn connect(config: &Config) -> Result<Engine, DockerError> {
        let docker = ferry_provider_core::engine::connect().await?;
        Ok(Engine {
            docker,
            instance: config.instance.clone(),
            network: config.network.clone(),
        })
    }

    /// The underlying Docker client.
    pub(crate) fn client(&self) -> &Docker {
        &self.docker
    }

    /// Checks that the engine answers and is a swarm manager.
    pub async fn check(&self) -> Result<(), SwarmError> {
        ferry_provider_core::engine::ping(&self.docker).await?;
        match self.docker.inspect_swarm().await {
            Ok(_) => Ok(()),
            Err(e) => Err(SwarmError::NotSwarm(e.to_string())),
        }
    }

    /// Creates the attachable overlay functions network if it does not exist.
    pub async fn ensure_network(&self) -> Result<(), DockerError> {
        ferry_provider_core::network::ensure_network(
            &self.docker,
            &self.network,
            "overlay",
            &self.instance,
        )
        .await
        .map(|_| ())
    }

    /// The ID of `image` on the engine; nothing is pulled.
    pub async fn image_id(&self, image: &str) -> Result<String, SwarmError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => {
                i.id.ok_or_else(|| unavailable(image, "the engine reports no ID for it"))
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(unavailable(
                image,
                "it is not present on the Docker engine (provider-swarm never pulls)",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Every service of this instance (or of `f` only), and the ids of those that carry no
    /// readable deployment.
    pub async fn services(
        &self,
        f: Option<&FunctionRef>,
    ) -> Result<(Vec<FunctionService>, Vec<String>), DockerError> {
        let mut label_filters = vec![format!("{}={}", labels::FERRY_INSTANCE, self.instance)];
        if let Some(f) = f {
            label_filters.push(format!("{}={}", labels::FUNCTION, f.name));
            label_filters.push(format!("{}={}", labels::NAMESPACE, f.namespace));
        }
        let filters = HashMap::from([("label", label_filters)]);
        let options = ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for s in self.docker.list_services(Some(options)).await? {
            let id = s.id.clone().unwrap_or_default();
            match read_service(s) {
                Some(fs) => good.push(fs),
                None => bad.push(id),
            }
        }
        Ok((good, bad))
    }

    /// Creates a service.
    pub async fn create(&self, spec: ServiceSpec) -> Result<(), DockerError> {
        // No registry credentials: the manager does not query a registry for the image,
        // which is referenced by its local ID.
        self.docker.create_service(spec, None).await.map(|_| ())
    }

    /// Replaces the spec of service `id` at `version`.
    pub async fn update(
        &self,
        id: &str,
        version: u64,
        spec: ServiceSpec,
    ) -> Result<(), DockerError> {
        let options = UpdateServiceOptionsBuilder::default()
            .version(i32::try_from(version).unwrap_or(i32::MAX))
            .build();
        self.docker
            .update_service(id, spec, options, None)
            .await
            .map(|_| ())
    }

    /// Removes service `id` (Swarm stops its tasks).
    pub async fn remove(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.delete_service(id).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The running tasks of service `id`, with their addresses on the functions network
    /// (read from their containers: this node's only).
    pub async fn running_tasks(&self, id: &str) -> Result<Vec<RunningTask>, DockerError> {
        let filters = HashMap::from([("service", vec![id]), ("desired-state", vec!["running"])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let mut out = Vec::new();
        for t in self.docker.list_tasks(Some(options)).await? {
            let status = t.status.unwrap_or_default();
            if status.state != Some(TaskState::RUNNING) {
                continue;
            }
            let container = status.container_status.and_then(|c| c.container_id);
            let address = match &container {
                Some(c) => self.container_ip(c).await,
                None => None,
            };
            out.push(RunningTask {
                id: t.id.unwrap_or_default(),
                address: address.map(|ip| format!("{ip}:8080")),
                container,
            });
        }
        Ok(out)
    }

    async fn container_ip(&self, container: &str) -> Option<String> {
        let inspect = self.docker.inspect_container(container, None).await.ok()?;
        inspect
            .network_settings?
            .networks?
            .get(&self.network)?
            .ip_address
            .clone()
            .filter(|ip| !ip.is_empty())
    }
}

fn unavailable(image: &str, reason: &str) -> SwarmError {
    SwarmError::from(ferry_provider_core::ApiError::ImageUnavailable {
        image: image.into(),
        reason: reason.into(),
    })
}

fn read_service(s: Service) -> Option<FunctionService> {
    let spec = s.spec?;
    let service_labels = spec.labels.as_ref()?;
    let deployment: FunctionDeployment =
        serde_json::from_str(service_labels.get(DEPLOYMENT_LABEL)?).ok()?;
    let function = deployment.validate().ok()?;
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .and_then(|r| u64::try_from(r).ok())
        .unwrap_or(0);
    Some(FunctionService {
        id: s.id?,
        version: s.version.and_then(|v| v.index).unwrap_or(0),
        created_at: service_labels
            .get(CREATED_LABEL)
            .cloned()
            .unwrap_or_default(),
        function,
        deployment,
        replicas,
        spec,
    })
}
