//! The provider API checks every backend must pass (provider-docker, provider-swarm): one
//! function through deploy, status, list, endpoints, logs, scale up, scale to zero and back,
//! update and delete ([`lifecycle`]), with its replicas invoked at the addresses the provider
//! publishes; secrets read by a function and updated under it ([`secrets::secrets`]); the
//! namespace API ([`namespaces::namespaces`]).
//!
//! How a replica's address is reached depends on the backend: provider-docker publishes on
//! loopback ([`Reach::Direct`]); provider-swarm's addresses are task IPs on an overlay
//! network the host cannot route to, so requests go through a helper container attached
//! to that network ([`Reach::Via`], `busybox nc` run with `docker exec`).

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::provider::{TestProvider, ready_addresses};
use crate::{http_client, wait_until};

pub mod namespaces;
pub mod secrets;

const MINUTE: Duration = Duration::from_secs(60);

/// How the test reaches a replica's address.
pub enum Reach {
    /// Straight from the test process.
    Direct,
    /// Through `docker exec <container> busybox wget` in a container on the replicas' network.
    Via(Docker, String),
}

impl Reach {
    /// POSTs `body` to `http://<address>/`; the echo function's JSON answer, or `None` when
    /// the replica does not answer (yet).
    pub async fn post(&self, address: &str, body: &str) -> Option<Value> {
        let url = format!("http://{address}/");
        match self {
            Reach::Direct => {
                let resp = http_client().post(&url).body(body.to_string()).send().await;
                resp.ok()?.json().await.ok()
            }
            Reach::Via(docker, container) => {
                // Busybox's wget crashes in these static images; nc sends the request (and
                // keeps its input open for a second, as it quits when the input ends).
                let (host, port) = address.rsplit_once(':')?;
                let script = format!(
                    "(printf 'POST / HTTP/1.0\\r\\nContent-Length: {}\\r\\n\\r\\n%s' \"$0\"; \
                     /bin/busybox sleep 1) | /bin/busybox nc {host} {port}",
                    body.len()
                );
                let cmd = ["/bin/busybox", "sh", "-c", &script, body];
                let out = exec(docker, container, cmd.map(String::from).to_vec()).await?;
                let (head, json) = out.split_once("\r\n\r\n")?;
                let ok = head.split(' ').nth(1) == Some("200");
                ok.then(|| serde_json::from_str(json).ok()).flatten()
            }
        }
    }

    /// `GET http://<address><path>`: the status and body, or `None` when the replica does
    /// not answer (yet).
    pub async fn get(&self, address: &str, path: &str) -> Option<(u16, Vec<u8>)> {
        match self {
            Reach::Direct => {
                let resp = http_client()
                    .get(format!("http://{address}{path}"))
                    .send()
                    .await
                    .ok()?;
                let status = resp.status().as_u16();
                Some((status, resp.bytes().await.ok()?.to_vec()))
            }
            Reach::Via(docker, container) => {
                let (host, port) = address.rsplit_once(':')?;
                let script = format!(
                    "(printf 'GET %s HTTP/1.0\\r\\n\\r\\n' \"$0\"; /bin/busybox sleep 1) \
                     | /bin/busybox nc {host} {port}"
                );
                let cmd = ["/bin/busybox", "sh", "-c", &script, path];
                let out = exec(docker, container, cmd.map(String::from).to_vec()).await?;
                let (head, body) = out.split_once("\r\n\r\n")?;
                let status = head.split(' ').nth(1)?.parse().ok()?;
                Some((status, body.as_bytes().to_vec()))
            }
        }
    }
}

/// Runs `cmd` in `container`; its stdout, or `None` if it could not run.
pub async fn exec(docker: &Docker, container: &str, cmd: Vec<String>) -> Option<String> {
    let options = CreateExecOptions {
        cmd: Some(cmd),
        attach_stdout: Some(true),
        attach_stderr: Some(false),
        ..Default::default()
    };
    let created = docker.create_exec(container, options).await.ok()?;
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&created.id, None).await.ok()?
    else {
        return None;
    };
    let mut out = String::new();
    while let Some(Ok(chunk)) = output.next().await {
        out.push_str(&chunk.to_string());
    }
    Some(out)
}

async fn call_ok(p: &TestProvider, method: &str, path: &str, body: &Value) -> u16 {
    p.call(method, path, Some(&body.to_string())).await.0
}

/// The hostnames answering at `name`'s ready addresses.
async fn hostnames(p: &TestProvider, reach: &Reach, name: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    for a in ready_addresses(p, name).await {
        if let Some(out) = reach.post(&a, "").await {
            hosts.push(out["hostname"].as_str().unwrap_or_default().to_string());
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Waits until every ready replica of `name` answers with `GREETING=greeting` (and one
/// does).
async fn wait_greeting(p: &TestProvider, reach: &Reach, name: &str, greeting: &str) {
    wait_until(&format!("{name} answers {greeting}"), MINUTE, || async {
        let addresses = ready_addresses(p, name).await;
        let mut all = !addresses.is_empty();
        for a in &addresses {
            let out = reach.post(a, "payload").await;
            all &= out.is_some_and(|o| o["env"]["GREETING"] == greeting && o["body"] == "payload");
        }
        all
    })
    .await;
}

/// `GET /system/logs?name=<name>` (not followed), one JSON value per line.
async fn log_lines(p: &TestProvider, name: &str) -> Vec<Value> {
    let resp = http_client()
        .get(p.url(&format!("/system/logs?name={name}")))
        .send()
        .await
        .expect("GET /system/logs");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect()
}

/// The lifecycle of one function `suite` from `image` (the echo function).
pub async fn lifecycle(p: &TestProvider, reach: &Reach, image: &str) {
    let name = "suite";
    let deployment = json!({
        "service": name, "image": image, "envVars": {"GREETING": "hello"},
        "labels": {"team": "blue"}, "annotations": {"topic": "orders"}
    });
    assert_eq!(
        call_ok(p, "POST", "/system/functions", &deployment).await,
        202
    );
    assert_eq!(
        call_ok(p, "POST", "/system/functions", &deployment).await,
        409
    );
    p.wait_available(name, 1).await;
    let status = p
        .status(name)
        .await
        .expect("status of the deployed function");
    assert_eq!(status.image, image);
    assert_eq!(status.namespace, "openfaas-fn");
    assert_eq!(status.env_vars["GREETING"], "hello");
    assert_eq!(status.labels["team"], "blue");
    assert_eq!(status.labels["faas_function"], name);
    assert_eq!(status.annotations["topic"], "orders");
    assert!(status.created_at.is_some());
    let (code, list) = p.call("GET", "/system/functions", None).await;
    assert_eq!(code, 200);
    assert_eq!(list[0]["name"], name, "{list}");
    wait_greeting(p, reach, name, "hello").await;

    // Logs: the replicas' output as NDJSON lines naming the function.
    wait_until("the function's logs have lines", MINUTE, || async {
        let lines = log_lines(p, name).await;
        !lines.is_empty()
            && lines.iter().all(|l| {
                l["name"] == name
                    && l["namespace"] == "openfaas-fn"
                    && l["timestamp"].as_str().is_some_and(|t| !t.is_empty())
            })
    })
    .await;

    // Scale up: three replicas, three containers answering.
    assert_eq!(p.scale(name, 3).await, 202);
    p.wait_available(name, 3).await;
    wait_until("three replicas answer", MINUTE, || async {
        hostnames(p, reach, name).await.len() == 3
    })
    .await;

    // Scale to zero and back.
    assert_eq!(p.scale(name, 0).await, 202);
    wait_until("no replica is left", MINUTE, || async {
        p.status(name)
            .await
            .is_some_and(|s| s.replicas == 0 && s.available_replicas == 0)
            && ready_addresses(p, name).await.is_empty()
    })
    .await;
    assert_eq!(p.scale(name, 1).await, 202);
    p.wait_available(name, 1).await;
    wait_greeting(p, reach, name, "hello").await;

    // Update: new replicas with the new environment replace the old.
    let updated = json!({"service": name, "image": image, "envVars": {"GREETING": "bye"}});
    assert_eq!(call_ok(p, "PUT", "/system/functions", &updated).await, 202);
    wait_greeting(p, reach, name, "bye").await;
    p.wait_available(name, 1).await;
    assert_eq!(p.status(name).await.unwrap().labels.get("team"), None);

    // Delete: gone from the API at once; a second delete finds nothing.
    let delete = json!({"functionName": name});
    assert_eq!(
        call_ok(p, "DELETE", "/system/functions", &delete).await,
        202
    );
    assert!(p.status(name).await.is_none());
    let (_, list) = p.call("GET", "/system/functions", None).await;
    assert_eq!(list, json!([]));
    assert_eq!(
        call_ok(p, "DELETE", "/system/functions", &delete).await,
        404
    );
}
