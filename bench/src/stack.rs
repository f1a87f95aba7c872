//! The real stack under test: `nats-server -js`, `provider-docker` (in this process, published
//! endpoint mode: replicas on `127.0.0.1:<port>`), the release `gateway` and `queue-worker`
//! binaries as child processes (so their CPU time and peak RSS can be read from `/proc`), a
//! callback receiver, and the `echo` function (the workspace's watchdog in `http` mode in
//! front of `echo-server`, in an image built on this machine).
//!
//! With `--nats-cluster`, NATS is three clustered `nats-server`s and the gateway and the worker
//! get all three URLs and `nats_replicas=3` (every stream and bucket R3): the cost of
//! replication on the async path. With `--cluster`, the stack has the shape of
//! `compose.cluster.yaml` (`make up-cluster`): three clustered NATS servers, two gateways
//! behind haproxy ([`crate::front`]), three workers; the scenarios send their load to haproxy.
//! CPU time is summed per kind of process (all gateways, all workers, all NATS servers); NATS's
//! message counts are those of the first server only.
//!
//! Docker objects carry `com.ferry.test=<id>` (via [`DockerGuard`]) and go when the stack is
//! dropped, pass or fail; the processes are killed on drop.

use std::time::Duration;

use anyhow::{Context as _, bail};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::nats_cluster::NatsCluster;
use ferry_tests::process::ServiceProcess;
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::worker::start_process;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, free_port, http_client};
use serde_json::json;

use crate::front::Front;

/// Log level of the gateway and the worker: per-request logging would cost CPU.
const LOG_LEVEL: &str = "warn";

/// The shape of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One NATS server, one gateway, one worker.
    #[default]
    Single,
    /// `--nats-cluster`: three clustered NATS servers (R3), one gateway, one worker.
    NatsCluster,
    /// `--cluster`: three clustered NATS servers (R3), two gateways behind haproxy, three
    /// workers (`compose.cluster.yaml`'s shape).
    Cluster,
}

impl Topology {
    fn gateways(self) -> usize {
        if self == Topology::Cluster { 2 } else { 1 }
    }

    fn workers(self) -> usize {
        if self == Topology::Cluster { 3 } else { 1 }
    }

    /// The command-line flag that selects it (empty for the default).
    pub fn flag(self) -> &'static str {
        match self {
            Topology::Single => "",
            Topology::NatsCluster => " --nats-cluster",
            Topology::Cluster => " --cluster",
        }
    }
}

/// Everything the scenarios run against. Fields drop in declaration order: processes and the
/// provider stop before the guard removes their containers.
pub struct Stack {
    /// haproxy in front of the gateways, with [`Topology::Cluster`].
    front: Option<Front>,
    /// The gateway processes.
    gateways: Vec<ServiceProcess>,
    workers: Vec<ServiceProcess>,
    topology: Topology,
    /// Receives the async calls' callbacks.
    pub receiver: CallbackReceiver,
    /// The provider.
    pub provider: TestProvider,
    /// NATS (the first server of the cluster with `--nats-cluster` and `--cluster`).
    pub nats: NatsServer,
    /// The other servers of the cluster.
    nats_peers: Vec<NatsServer>,
    /// `nats_url` and `nats_replicas` of the gateway and the worker.
    nats_env: (String, &'static str),
    /// The echo function's image.
    pub echo: FunctionImage,
    /// Owns every Docker object.
    pub guard: DockerGuard,
    gateway_base: String,
}

impl Stack {
    /// Starts everything in the shape of `topology`, deploys `echo` (one replica) and waits
    /// until it is ready.
    pub async fn start(topology: Topology) -> anyhow::Result<Stack> {
        let guard = DockerGuard::new().await;
        let echo = FunctionImage::echo_http(&guard).await;
        let (nats, peers, nats_env) = if topology == Topology::Single {
            let nats = NatsServer::start_async().await;
            let url = nats.url();
            (nats, Vec::new(), (url, "1"))
        } else {
            let cluster = NatsCluster::start().await;
            let url = cluster.url();
            let mut servers = cluster.servers;
            (servers.remove(0), servers, (url, "3"))
        };
        let provider = TestProvider::start(&guard).await;
        let mut gateways = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..topology.gateways() {
            let port = free_port();
            let env = vec![
                ("port", port.to_string()),
                ("functions_provider_url", provider.url("")),
                ("nats_url", nats_env.0.clone()),
                ("nats_replicas", nats_env.1.to_string()),
                ("RUST_LOG", LOG_LEVEL.to_string()),
            ];
            gateways.push(
                tokio::task::spawn_blocking(move || {
                    ServiceProcess::start("ferry-gateway", "gateway", &env)
                })
                .await?,
            );
            ports.push(port);
        }
        let front = match topology {
            Topology::Cluster => Some(Front::start(&ports)?),
            _ => None,
        };
        let base_port = front.as_ref().map_or(ports[0], |f| f.port);
        let receiver = CallbackReceiver::start().await;
        let stack = Stack {
            front,
            gateways,
            workers: Vec::new(),
            topology,
            receiver,
            provider,
            nats,
            nats_peers: peers,
            nats_env,
            echo,
            guard,
            gateway_base: format!("http://127.0.0.1:{base_port}"),
        };
        for port in ports {
            wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await?;
        }
        wait_healthy(&stack.gateway_url("/healthz")).await?;
        // One replica throughout: P1 compares the gateway with that replica's own port, and
        // OpenFaaS CE's default rule would add replicas under the load.
        let pinned = json!({"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "1"});
        stack.deploy("echo", pinned).await?;
        stack.provider.wait_available("echo", 1).await;
        Ok(stack)
    }

    /// The stack's shape.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The gateways' pids.
    pub fn gateway_pids(&self) -> Vec<u32> {
        self.gateways.iter().map(ServiceProcess::pid).collect()
    }

    /// haproxy's pid, with [`Topology::Cluster`].
    pub fn front_pid(&self) -> Option<u32> {
        self.front.as_ref().map(|f| f.process.pid())
    }

    /// The NATS servers' pids.
    pub fn nats_pids(&self) -> Vec<u32> {
        std::iter::once(&self.nats)
            .chain(&self.nats_peers)
            .filter_map(NatsServer::pid)
            .collect()
    }

    /// `http://127.0.0.1:<gateway port><path>`.
    pub fn gateway_url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_base)
    }

    /// Deploys `name` from the echo image with `labels`, through the gateway.
    pub async fn deploy(&self, name: &str, labels: serde_json::Value) -> anyhow::Result<()> {
        let body = json!({"service": name, "image": self.echo.tag, "labels": labels});
        let resp = http_client()
            .post(self.gateway_url("/system/functions"))
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 202 {
            bail!("deploying {name}: {status} {}", resp.text().await?);
        }
        Ok(())
    }

    /// Deploys `spec` (a deployment without `image`: the echo image is used), through the
    /// gateway.
    pub async fn deploy_spec(&self, mut spec: serde_json::Value) -> anyhow::Result<()> {
        spec["image"] = json!(self.echo.tag);
        let resp = http_client()
            .post(self.gateway_url("/system/functions"))
            .json(&spec)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 202 {
            bail!("deploying {spec}: {status} {}", resp.text().await?);
        }
        Ok(())
    }

    /// `http://127.0.0.1:<port>` of `name`'s first ready replica (its published port).
    pub async fn direct_url(&self, name: &str) -> anyhow::Result<String> {
        let addresses = ready_addresses(&self.provider, name).await;
        let address = addresses
            .first()
            .with_context(|| format!("{name} has no ready replica"))?;
        let address = address.trim_start_matches("http://").trim_end_matches('/');
        Ok(format!("http://{address}"))
    }

    /// The host pid of the first running container of `name` (its watchdog).
    pub async fn container_pid(&self, name: &str) -> Option<u32> {
        for c in function_containers(&self.guard, name).await {
            let Some(id) = c.id else { continue };
            let inspected = self
                .guard
                .docker()
                .inspect_container(&id, None)
                .await
                .ok()?;
            if let Some(pid) = inspected.state.and_then(|s| s.pid).filter(|p| *p > 0) {
                return u32::try_from(pid).ok();
            }
        }
        None
    }

    /// (Re)starts the queue-worker processes (one, or three with [`Topology::Cluster`]), each
    /// with `max_inflight`, and waits until they are healthy. `max_inflight_per_function` is
    /// set to the same value: the scenarios run one function, which should be able to use the
    /// whole worker.
    pub async fn start_worker(&mut self, max_inflight: usize) {
        self.stop_worker();
        let inflight = max_inflight.to_string();
        // `gateway_url` is for a worker from before issue 12 (which invoked through the
        // gateway), so the same bench can measure one (`FERRY_BIN_DIR` of an older build);
        // today's worker calls replicas itself and ignores it.
        let gateway = self.gateway_base.clone();
        let extra = [
            ("max_inflight", inflight.as_str()),
            ("max_inflight_per_function", inflight.as_str()),
            ("RUST_LOG", LOG_LEVEL),
            ("gateway_url", gateway.as_str()),
            ("nats_replicas", self.nats_env.1),
        ];
        let provider = self.provider.url("");
        for _ in 0..self.topology.workers() {
            let worker = start_process(&self.nats_env.0, &provider, &extra).await;
            self.workers.push(worker);
        }
    }

    /// Messages nats-server received from and sent to its clients so far (`in_msgs`,
    /// `out_msgs` of its `/varz`): every publish, request, reply, ack and delivery counts.
    pub async fn nats_messages(&self) -> anyhow::Result<(u64, u64)> {
        let varz: serde_json::Value = http_client()
            .get(format!("{}/varz", self.nats.monitor_url()))
            .send()
            .await?
            .json()
            .await?;
        let count = |k: &str| {
            varz[k]
                .as_u64()
                .with_context(|| format!("/varz without {k}"))
        };
        Ok((count("in_msgs")?, count("out_msgs")?))
    }

    /// Stops the queue-worker processes (SIGTERM: in-flight calls finish), if any run.
    pub fn stop_worker(&mut self) {
        for mut worker in self.workers.drain(..) {
            if worker.is_running() {
                worker.terminate();
            }
        }
    }

    /// The first worker's pid, if one runs.
    pub fn worker_pid(&self) -> Option<u32> {
        self.workers.first().map(ServiceProcess::pid)
    }

    /// Every worker's pid.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(ServiceProcess::pid).collect()
    }

    /// A JetStream context on the stack's NATS.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.connect().await)
    }

    /// Deletes every message of the calls stream (after scenarios that queue calls no worker
    /// takes).
    pub async fn purge_calls(&self) -> anyhow::Result<()> {
        let js = self.jetstream().await;
        let stream = js
            .get_stream(ferry_proto::jetstream::CALLS_STREAM)
            .await
            .context("the calls stream")?;
        stream.purge().await.context("purging the calls stream")?;
        Ok(())
    }

    /// Messages waiting in the calls stream.
    pub async fn queued_calls(&self) -> u64 {
        let js = self.jetstream().await;
        ferry_tests::worker::stored_calls(&js).await
    }
}

/// Waits until `url` answers `200` (30 s at most).
async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let client = http_client();
    let what = format!("{url} answers 200");
    let healthy = || ferry_tests::answers_ok(&client, url);
    Ok(ferry_tests::try_wait_until(&what, Duration::from_secs(30), healthy).await?)
}
