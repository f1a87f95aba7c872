//! `gateway` started in-process for a test, on a free loopback port.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway; stops on drop.
pub struct TestGateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// A gateway in front of the provider at `provider_url` (e.g. `provider.url("")`) and the
    /// NATS server at `nats_url`, with extra (or overriding) environment variables such as
    /// `[("upstream_timeout", "1s")]`. The provider and NATS need not be up.
    pub async fn start(provider_url: &str, nats_url: &str, extra: &[(&str, &str)]) -> TestGateway {
        let mut env: HashMap<String, String> = [
            ("functions_provider_url", provider_url),
            ("nats_url", nats_url),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = ferry_gateway::Config::from_env(&env).expect("test gateway config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("gateway address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = ferry_gateway::run(config, listener, shutdown).await {
                panic!("gateway failed: {e}");
            }
        });
        TestGateway {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the gateway to shut down gracefully and waits until it has (in-flight requests
    /// finish first).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
