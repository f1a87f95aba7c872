//! provider-docker secrets and logs end to end: secrets created through the API are read by
//! the function at `/var/openfaas/secrets/<name>` (and updates seen by running replicas),
//! never echoed by the API, kept across restarts; what the function prints reaches
//! `/system/logs`, and `follow` streams new lines, also from replicas that start later.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, Instant};

use ferry_proto::logs::LogMessage;
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::{DockerGuard, FunctionImage, ImageSpec, http_client};
use serde_json::{Value, json};

const VALUE_1: &str = "s3cr3t-value-one";
const VALUE_2: &str = "s3cr3t-value-two";
const RAW: &[u8] = b"\x00\x01binary\xff";
const RAW_BASE64: &str = "AAFiaW5hcnn/";

/// Sends a request; returns the status and the raw body, after checking that no secret value
/// appears in it.
async fn call(
    provider: &TestProvider,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http_client().request(method, provider.url(path));
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    for value in [VALUE_1, VALUE_2, RAW_BASE64, "binary"] {
        assert!(
            !text.contains(value),
            "{path} answered with a secret value: {text}"
        );
    }
    (status, text)
}

/// The bytes of `/var/openfaas/secrets/<name>` as the function serves them.
async fn read_secret(address: &str, name: &str) -> (u16, Vec<u8>) {
    let resp = http_client()
        .get(format!("http://{address}/_/secret/{name}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

/// `cat <path>` in the container as `user`; its stdout and stderr.
async fn exec_as(guard: &DockerGuard, id: &str, user: &str, path: &str) -> String {
    use futures_util::StreamExt;
    let config = bollard::models::ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some(user.into()),
        cmd: Some(vec!["cat".into(), path.into()]),
        ..Default::default()
    };
    let exec = guard.docker().create_exec(id, config).await.unwrap();
    let mut out = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        guard.docker().start_exec(&exec.id, None).await.unwrap()
    {
        while let Some(chunk) = output.next().await {
            out.push_str(&chunk.unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_mounted_updated_kept_and_never_returned() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;

    // Create: 201; again: 409; rawValue is base64; bad names and empty values: 400.
    let db = json!({"name": "db-password", "value": VALUE_1});
    assert_eq!(
        call(&provider, "POST", "/system/secrets", Some(db.clone()))
            .await
            .0,
        201
    );
    let (code, text) = call(&provider, "POST", "/system/secrets", Some(db)).await;
    assert_eq!(code, 409, "{text}");
    let raw = json!({"name": "api-key", "rawValue": RAW_BASE64});
    assert_eq!(
        call(&provider, "POST", "/system/secrets", Some(raw))
            .await
            .0,
        201
    );
    for bad in [
        json!({"name": "../etc", "value": "x"}),
        json!({"name": "a/b", "value": "x"}),
        json!({"name": "..", "value": "x"}),
        json!({"name": ".hidden", "value": "x"}),
        json!({"name": "", "value": "x"}),
        json!({"name": "empty"}),
        json!({"name": "notbase64", "rawValue": "%%%zz"}),
        json!({"name": "number", "value": 12345678}),
    ] {
        let (code, text) = call(&provider, "POST", "/system/secrets", Some(bad.clone())).await;
        assert_eq!(code, 400, "{bad}: {text}");
        for echoed in ["%%%zz", "12345678", "%zz"] {
            assert!(!text.contains(echoed), "{text} repeats the value");
        }
    }
    let (code, _) = call(
        &provider,
        "POST",
        "/system/secrets?namespace=team",
        Some(json!({"name": "t", "value": "v"})),
    )
    .await;
    assert_eq!(code, 201);

    // List: names and namespaces only, per namespace.
    let (code, text) = call(&provider, "GET", "/system/secrets", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([{"name": "api-key", "namespace": "openfaas-fn"},
               {"name": "db-password", "namespace": "openfaas-fn"}])
    );
    let (_, text) = call(&provider, "GET", "/system/secrets?namespace=team", None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([{"name": "t", "namespace": "team"}])
    );

    // A function naming them reads them at /var/openfaas/secrets/<name>.
    let deployment =
        json!({"service": "reader", "image": echo.tag, "secrets": ["db-password", "api-key"]});
    let (code, text) = call(&provider, "POST", "/system/functions", Some(deployment)).await;
    assert_eq!(code, 202, "{text}");
    provider.wait_available("reader", 1).await;
    let address = ready_addresses(&provider, "reader").await.remove(0);
    assert_eq!(
        read_secret(&address, "db-password").await,
        (200, VALUE_1.into())
    );
    assert_eq!(read_secret(&address, "api-key").await, (200, RAW.to_vec()));
    let (_, status) = call(&provider, "GET", "/system/function/reader", None).await;
    assert!(status.contains("db-password"), "{status}");
    call(&provider, "GET", "/system/functions", None).await;

    // Read-only bind mounts, nothing in the environment.
    let id = function_containers(&guard, "reader")
        .await
        .remove(0)
        .id
        .unwrap();
    let inspect = guard.docker().inspect_container(&id, None).await.unwrap();
    let mounts = inspect.mounts.unwrap();
    let mount = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/var/openfaas/secrets/db-password"))
        .expect("db-password mounted");
    assert_eq!(mount.rw, Some(false));
    let env = inspect.config.unwrap().env.unwrap_or_default().join("\n");
    assert!(!env.contains(VALUE_1));
    // A function running as another user than root reads it too.
    assert_eq!(
        exec_as(
            &guard,
            &id,
            "1000:1000",
            "/var/openfaas/secrets/db-password"
        )
        .await,
        VALUE_1
    );

    // Update: the running replica reads the new value; unknown secret: 404.
    let update = json!({"name": "db-password", "value": VALUE_2});
    assert_eq!(
        call(&provider, "PUT", "/system/secrets", Some(update))
            .await
            .0,
        200
    );
    assert_eq!(
        read_secret(&address, "db-password").await,
        (200, VALUE_2.into())
    );
    let unknown = json!({"name": "nope", "value": "x"});
    assert_eq!(
        call(&provider, "PUT", "/system/secrets", Some(unknown))
            .await
            .0,
        404
    );

    // A secret in use cannot be deleted.
    let (code, text) = call(
        &provider,
        "DELETE",
        "/system/secrets",
        Some(json!({"name": "db-password"})),
    )
    .await;
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("reader.openfaas-fn"), "{text}");

    // A restarted provider still has the secrets and the function.
    provider.stop().await;
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    provider.wait_available("reader", 1).await;
    let (_, text) = call(&provider, "GET", "/system/secrets", None).await;
    assert!(
        text.contains("db-password") && text.contains("api-key"),
        "{text}"
    );
    let address = ready_addresses(&provider, "reader").await.remove(0);
    assert_eq!(
        read_secret(&address, "db-password").await,
        (200, VALUE_2.into())
    );

    // Delete the function, then its secrets (body, or namespace in the query): 200 (faasd's
    // answer; faas-cli takes nothing else but 202), then 404.
    let (code, _) = call(
        &provider,
        "DELETE",
        "/system/functions",
        Some(json!({"functionName": "reader"})),
    )
    .await;
    assert_eq!(code, 202);
    let (code, text) = call(
        &provider,
        "DELETE",
        "/system/secrets",
        Some(json!({"name": "db-password"})),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, _) = call(
        &provider,
        "DELETE",
        "/system/secrets?namespace=openfaas-fn",
        Some(json!({"name": "api-key"})),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = call(
        &provider,
        "DELETE",
        "/system/secrets",
        Some(json!({"name": "db-password"})),
    )
    .await;
    assert_eq!(code, 404);
    let (_, text) = call(&provider, "GET", "/system/secrets", None).await;
    assert_eq!(text, "[]");

    // Deploying a function naming a deleted secret fails, naming it.
    let deployment = json!({"service": "again", "image": echo.tag, "secrets": ["db-password"]});
    let (code, text) = call(&provider, "POST", "/system/functions", Some(deployment)).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("unable to find secret: db-password"),
        "{text}"
    );
    assert!(function_containers(&guard, "again").await.is_empty());
}

/// Prints a line naming the request's query to stderr, answers `ok`.
const TALKER: &str = "#!/bin/sh\necho \"log line $Http_Query\" >&2\necho ok\n";

async fn invoke(address: &str, marker: &str) {
    let resp = http_client()
        .post(format!("http://{address}/?{marker}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn log_lines(provider: &TestProvider, query: &str) -> Vec<LogMessage> {
    let resp = http_client()
        .get(provider.url(&format!("/system/logs?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Polls `/system/logs?<query>` until a line contains `needle`; returns that line.
async fn find_line(provider: &TestProvider, query: &str, needle: &str) -> LogMessage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log_lines(provider, query).await;
        if let Some(line) = lines.into_iter().find(|m| m.text.contains(needle)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?} in 20s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads a following logs stream until a line contains `needle`; returns that line.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> LogMessage {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = String::new();
    loop {
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let message: LogMessage = serde_json::from_str(line.trim_end()).unwrap();
            if message.text.contains(needle) {
                return message;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no log line with {needle:?} within 30s"))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_output_reaches_logs_and_follow_streams_new_lines() {
    let guard = DockerGuard::new().await;
    let talker =
        FunctionImage::build(&guard, "talker", &ImageSpec::shell_serializing(TALKER)).await;
    let provider = TestProvider::start(&guard).await;
    let (code, text) = call(
        &provider,
        "POST",
        "/system/functions",
        Some(json!({"service": "talker", "image": talker.tag})),
    )
    .await;
    assert_eq!(code, 202, "{text}");
    provider.wait_available("talker", 1).await;
    let address = ready_addresses(&provider, "talker").await.remove(0);
    let first_id = function_containers(&guard, "talker")
        .await
        .remove(0)
        .id
        .unwrap();
    invoke(&address, "marker-1").await;

    // The line is in the logs, with the function, its replica and a timestamp.
    let line = find_line(&provider, "name=talker", "log line marker-1").await;
    assert_eq!(
        (line.name.as_str(), line.namespace.as_str()),
        ("talker", "openfaas-fn")
    );
    assert_eq!(line.instance, first_id[..12]);
    assert!(
        line.timestamp.len() > 20 && line.timestamp.as_bytes()[10] == b'T',
        "{}",
        line.timestamp
    );
    assert!(!line.text.ends_with('\n'));

    // tail=1: one line; since in the future: none; instance: only that replica.
    assert_eq!(log_lines(&provider, "name=talker&tail=1").await.len(), 1);
    assert!(
        log_lines(&provider, "name=talker&since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    let mine = log_lines(
        &provider,
        &format!("name=talker&instance={}", &first_id[..12]),
    )
    .await;
    assert!(mine.iter().any(|m| m.text.contains("marker-1")));

    // Errors: unknown function or instance 404, bad parameters 400.
    for (query, want) in [
        ("name=nope", 404),
        ("name=talker&instance=ffffffffffff", 404),
        ("", 400),
        ("name=talker&tail=many", 400),
        ("name=talker&since=yesterday", 400),
        ("name=talker&follow=maybe", 400),
    ] {
        let (code, text) = call(&provider, "GET", &format!("/system/logs?{query}"), None).await;
        assert_eq!(code, want, "{query}: {text}");
        assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    }

    // follow=true: the history, then lines written after the request began...
    let streaming = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut resp = streaming
        .get(provider.url("/system/logs?name=talker&follow=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    read_until(&mut resp, "log line marker-1").await;
    invoke(&address, "marker-2").await;
    read_until(&mut resp, "log line marker-2").await;

    // ...also from a replica that started after it.
    let (code, _) = call(
        &provider,
        "POST",
        "/system/scale-function/talker",
        Some(json!({"serviceName": "talker", "replicas": 2})),
    )
    .await;
    assert_eq!(code, 202);
    provider.wait_available("talker", 2).await;
    let new_address = ready_addresses(&provider, "talker")
        .await
        .into_iter()
        .find(|a| *a != address)
        .unwrap();
    invoke(&new_address, "marker-3").await;
    let line = read_until(&mut resp, "log line marker-3").await;
    assert_ne!(line.instance, first_id[..12]);
    drop(resp);
}
