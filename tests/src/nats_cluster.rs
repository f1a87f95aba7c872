//! Three real `nats-server` processes clustered with JetStream, for tests of ferry on a NATS
//! cluster: each its own store folder, client and monitoring port on 127.0.0.1, routes to the
//! other two, one cluster name. [`NatsCluster::url`] is the comma-separated list of the three
//! client URLs, as ferry's `nats_url` takes it.

use std::time::Duration;

use serde_json::Value;

use crate::{NatsServer, free_port, http_client, wait_until};

/// The cluster's name (`--cluster_name`).
const CLUSTER_NAME: &str = "ferry-test";

/// Three clustered JetStream servers; killed (and their stores removed) on drop.
pub struct NatsCluster {
    /// The servers, `n0`, `n1`, `n2`.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three servers routed to each other and waits until JetStream has a meta leader
    /// (the cluster can create streams).
    pub async fn start() -> NatsCluster {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::new();
        for (i, port) in cluster_ports.iter().enumerate() {
            let args = [
                "--server_name".to_string(),
                format!("n{i}"),
                "--cluster_name".to_string(),
                CLUSTER_NAME.to_string(),
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{port}"),
                "--routes".to_string(),
                routes.clone(),
            ];
            let server = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                NatsServer::start_with(&args)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            servers.push(server);
        }
        let cluster = NatsCluster { servers };
        cluster.wait_meta_leader().await;
        cluster
    }

    /// `nats://127.0.0.1:<p0>,nats://127.0.0.1:<p1>,nats://127.0.0.1:<p2>`.
    pub fn url(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until a running server's `/jsz` names a JetStream meta leader with a quorum.
    pub async fn wait_meta_leader(&self) {
        let monitors: Vec<String> = self.servers.iter().map(|s| s.monitor_url()).collect();
        wait_until(
            "the NATS cluster has a JetStream meta leader",
            Duration::from_secs(30),
            || async {
                for monitor in &monitors {
                    if let Some(jsz) = jsz(monitor).await {
                        if jsz["meta_cluster"]["leader"]
                            .as_str()
                            .is_some_and(|l| !l.is_empty())
                        {
                            return true;
                        }
                    }
                }
                false
            },
        )
        .await;
    }

    /// The replica count and leader of stream `name`, as server `from` reports it.
    pub async fn stream_replicas(&self, from: usize, name: &str) -> Option<(u64, String)> {
        let jsz = jsz(&format!(
            "{}/jsz?streams=true&config=true",
            self.servers[from].monitor_url()
        ))
        .await?;
        let streams = jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default());
        for s in streams {
            if s["name"] == name {
                let replicas = s["config"]["num_replicas"].as_u64()?;
                let leader = s["cluster"]["leader"].as_str().unwrap_or_default();
                return Some((replicas, leader.to_string()));
            }
        }
        None
    }
}

/// `GET <monitor>/jsz` (or the URL as given when it has a path), as JSON.
async fn jsz(url: &str) -> Option<Value> {
    let url = if url.contains("/jsz") {
        url.to_string()
    } else {
        format!("{url}/jsz")
    };
    let response = http_client().get(url).send().await.ok()?;
    response.json().await.ok()
}
