//! Connecting the platform's own containers to the functions network.
//!
//! With `endpoint_mode=network` (ferry in compose) the gateway and the queue-workers call
//! replicas at their addresses on the functions network, and the provider probes and scrapes
//! them there. That network belongs to the provider, not to compose: the provider creates it,
//! labels it with its instance and shares it across compose projects' restarts. So the
//! containers that must reach replicas carry the label `com.ferry.attach=<instance>` (in
//! `compose.yaml`: the gateway, the queue-workers and the provider itself), and the provider
//! connects every running one that is not on the network yet: once at start-up, right after
//! creating the network, and then every reconcile round, which also catches a container
//! compose recreated.
//!
//! Until a container is attached it cannot reach replicas; nothing else depends on it (the
//! gateway's `/healthz` is about NATS and the provider). With `endpoint_mode=published` (a
//! gateway on the host, reaching replicas through published ports) there is nothing to attach
//! and the attacher does nothing.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerSummary, NetworkConnectRequest};
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::config::{Config, EndpointMode};
use crate::docker::Engine;

/// Label asking the provider of instance `<value>` to connect a container to its functions
/// network.
pub const ATTACH_LABEL: &str = "com.ferry.attach";

/// Connects labelled containers to the functions network.
#[derive(Debug, Clone)]
pub struct Attacher {
    /// Only with `endpoint_mode=network`.
    enabled: bool,
    engine: Engine,
    instance: String,
    network: String,
}

impl Attacher {
    /// For the provider configured by `config`, talking to the engine through `engine`.
    pub fn new(engine: &Engine, config: &Config) -> Attacher {
        Attacher {
            enabled: config.endpoint_mode == EndpointMode::Network,
            engine: engine.clone(),
            instance: config.instance.clone(),
            network: config.network.clone(),
        }
    }

    /// One round, in `network` endpoint mode: connects every running container labelled
    /// `com.ferry.attach=<instance>` that is not on the functions network (re-creating the
    /// network if it went missing). Failures are logged; the next round tries again.
    pub async fn attach_all(&self) {
        if !self.enabled {
            return;
        }
        if let Err(e) = self.try_attach_all().await {
            tracing::warn!(network = %self.network, error = %e,
                "cannot connect {ATTACH_LABEL}={} containers to the functions network", self.instance);
        }
    }

    /// [`Attacher::attach_all`], returning the names of the containers it connected.
    pub async fn try_attach_all(&self) -> Result<Vec<String>, DockerError> {
        let filter = format!("{ATTACH_LABEL}={}", self.instance);
        let filters = HashMap::from([("label", vec![filter.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let docker = self.engine.client();
        let missing: Vec<ContainerSummary> = docker
            .list_containers(Some(options))
            .await?
            .into_iter()
            .filter(|c| !self.is_attached(c))
            .collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        self.engine.ensure_network().await?;
        let mut attached = Vec::new();
        for container in missing {
            let Some(id) = container.id else { continue };
            let name = container
                .names
                .and_then(|names| names.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            let request = NetworkConnectRequest {
                container: id,
                endpoint_config: None,
            };
            match docker.connect_network(&self.network, request).await {
                Ok(()) => {
                    tracing::info!(container = %name, network = %self.network,
                        "connected to the functions network");
                    attached.push(name);
                }
                // Connected meanwhile (403 "already exists" on engines of this age), or the
                // container went away: nothing to do.
                Err(DockerError::DockerResponseServerError {
                    status_code: 403 | 404 | 409,
                    message,
                }) => {
                    tracing::debug!(container = %name, %message, "not connected");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(attached)
    }

    fn is_attached(&self, container: &ContainerSummary) -> bool {
        container
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref())
            .is_some_and(|networks| networks.contains_key(&self.network))
    }
}
