//! The bad-input and auth corpus (`tests/corpus/bad-input.json`) against a real stack with
//! basic auth on: NATS, a provider-docker and a gateway as child processes (their logs
//! captured), an `echo` function using the secret `s1`.
//!
//! Every case is a raw HTTP/1.1 request (so paths with `..`, `//` or `%2F`, header names in
//! any case and duplicated headers reach the gateway as written). Each must get its expected
//! status with a JSON `{"message"}` body; afterwards the stored state (functions, secrets,
//! namespaces, tokens, the calls stream and the call-status bucket) is what it was before; and no
//! answer and no line of either service's log shows the admin password, the wrong password
//! tried, the API tokens used, or the secret value sent in rejected requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferry_runtime::auth::{self, Credentials};
use ferry_tests::gateway::calls_and_statuses;
use ferry_tests::process::ServiceProcess;
use ferry_tests::raw_http::{self, RawResponse};
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, free_port, http_client, wait_until};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
/// Sent as the value of secrets in rejected requests: never shown anywhere.
const SECRET_VALUE: &str = "CorpusSecretValue-5e0c1d7a";
/// The wrong password tried: never shown anywhere either.
const WRONG_PASSWORD: &str = "WrongPassw0rd-b81f";
const CORPUS: &str = include_str!("../corpus/bad-input.json");

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    /// `METHOD target`.
    request: String,
    #[serde(default = "admin")]
    auth: String,
    #[serde(default)]
    headers: Vec<String>,
    /// A string is sent as it is; anything else as JSON.
    #[serde(default)]
    body: Option<Value>,
    status: u16,
    #[serde(default = "yes")]
    json: bool,
    #[serde(default)]
    read_only: bool,
}

fn admin() -> String {
    "admin".into()
}

fn yes() -> bool {
    true
}

/// Fills the corpus's placeholders.
struct Placeholders(Vec<(&'static str, String)>);

impl Placeholders {
    /// `tokens`: the `read` and the `deploy` token.
    fn new(credentials: &Credentials, tokens: &Tokens) -> Placeholders {
        let basic = |user: &str, password: &str| {
            format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
        };
        let admin = basic(credentials.user(), credentials.password());
        Placeholders(vec![
            ("{admin_lower}", admin.replacen("Basic", "basic", 1)),
            ("{admin}", admin),
            ("{wrong}", basic(credentials.user(), WRONG_PASSWORD)),
            ("{nouser}", basic("root", credentials.password())),
            ("{secret}", SECRET_VALUE.to_string()),
            ("{read_token}", format!("Bearer {}", tokens.read)),
            (
                "{dev_deploy_token}",
                format!("Bearer {}", tokens.dev_deploy),
            ),
        ])
    }

    fn fill(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (key, value) in &self.0 {
            text = text.replace(key, value);
        }
        while let Some(start) = text.find("{size:") {
            let end = start + text[start..].find('}').expect("a closed {size:N}");
            let n: usize = text[start + 6..end]
                .parse()
                .expect("{size:N} with a number");
            text.replace_range(start..=end, &"a".repeat(n));
        }
        text
    }
}

/// The raw request of `case`.
fn request_of(case: &Case, fill: &Placeholders) -> Vec<u8> {
    let body = match &case.body {
        None => String::new(),
        Some(Value::String(s)) => fill.fill(s),
        Some(v) => fill.fill(&v.to_string()),
    };
    let mut head = format!(
        "{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
        case.request
    );
    if case.auth == "admin" {
        head.push_str(&fill.fill("Authorization: {admin}\r\n"));
    }
    for header in &case.headers {
        head.push_str(&fill.fill(header));
        head.push_str("\r\n");
    }
    if case.body.as_ref().is_some_and(|b| !b.is_string()) {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// What a case must not change.
#[derive(Debug, PartialEq)]
struct State {
    functions: Value,
    secrets: Value,
    namespaces: Value,
    tokens: Value,
    calls: u64,
    statuses: Vec<String>,
}

/// A GET of the gateway's `/system` API as admin, sorted by name where it is a list (the
/// provider's order is not stable).
async fn admin_get(base: &str, path: &str, credentials: &Credentials) -> Value {
    let resp = http_client()
        .get(format!("{base}{path}"))
        .basic_auth(credentials.user(), Some(credentials.password()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(resp.status(), 200, "GET {path}");
    let mut value: Value = resp.json().await.expect("a JSON answer");
    if let Value::Array(items) = &mut value {
        // By name: objects by their `name`, strings (namespaces) by themselves.
        items.sort_by_key(|v| {
            let name = v["name"].as_str().or(v.as_str());
            name.unwrap_or_default().to_string()
        });
        for item in items.iter_mut() {
            // Counters move with calls (the corpus's own sync calls of `echo`), and the
            // replicas' sampled memory and CPU with time.
            if let Some(object) = item.as_object_mut() {
                object.remove("invocationCount");
                object.remove("usage");
            }
        }
    }
    value
}

async fn state(base: &str, credentials: &Credentials, nats: &NatsServer) -> State {
    let (stream, statuses) = calls_and_statuses(nats).await;
    let calls = stream
        .clone()
        .info()
        .await
        .expect("stream info")
        .state
        .messages;
    let mut keys: Vec<String> = match statuses.keys().await {
        Ok(keys) => keys.filter_map(|k| async { k.ok() }).collect().await,
        Err(_) => Vec::new(),
    };
    keys.sort();
    State {
        functions: admin_get(base, "/system/functions", credentials).await,
        secrets: admin_get(base, "/system/secrets", credentials).await,
        namespaces: admin_get(base, "/system/namespaces", credentials).await,
        tokens: admin_get(base, "/system/tokens", credentials).await,
        calls,
        statuses: keys,
    }
}

/// Gateway and provider with basic auth on, sharing `secrets`; the provider's data in
/// `data`. Returns them with the gateway's address.
async fn stack(
    guard: &DockerGuard,
    nats: &NatsServer,
    secrets: &str,
    data: &str,
) -> (ServiceProcess, ServiceProcess, SocketAddr) {
    let (gateway_port, provider_port) = (free_port(), free_port());
    let common = [("basic_auth", "true"), ("secret_mount_path", secrets)];
    let mut env: Vec<(&str, String)> = common.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("port", gateway_port.to_string()),
        ("nats_url", nats.url()),
        (
            "functions_provider_url",
            format!("http://127.0.0.1:{provider_port}"),
        ),
    ]);
    let gateway = ServiceProcess::start_logged_async("ferry-gateway", "gateway", env, "debug");
    let mut env: Vec<(&str, String)> = common.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("port", provider_port.to_string()),
        ("bind", "127.0.0.1".to_string()),
        ("instance", guard.id().to_string()),
        ("functions_network", format!("{}-fn", guard.id())),
        ("data_dir", data.to_string()),
    ]);
    let provider = ServiceProcess::start_logged_async(
        "ferry-provider-docker",
        "provider-docker",
        env,
        "debug",
    );
    let (gateway, provider) = tokio::join!(gateway, provider);
    let addr: SocketAddr = ([127, 0, 0, 1], gateway_port).into();
    let health = format!("http://{addr}/healthz");
    wait_until("the gateway is healthy", MINUTE, || async {
        let resp = http_client().get(&health).send().await;
        resp.is_ok_and(|r| r.status() == 200)
    })
    .await;
    (gateway, provider, addr)
}

/// Creates the secret `s1` and deploys `echo` using it, as admin.
async fn deploy_echo(base: &str, credentials: &Credentials, image: &str) {
    let client = http_client();
    let (user, password) = (credentials.user(), Some(credentials.password()));
    let secret = json!({"name": "s1", "value": "s1-value"});
    let resp = client
        .post(format!("{base}/system/secrets"))
        .basic_auth(user, password)
        .json(&secret)
        .send()
        .await
        .expect("create s1");
    assert_eq!(resp.status(), 201);
    let echo = json!({"service": "echo", "image": image, "secrets": ["s1"]});
    let resp = client
        .post(format!("{base}/system/functions"))
        .basic_auth(user, password)
        .json(&echo)
        .send()
        .await
        .expect("deploy echo");
    assert!(resp.status().is_success(), "deploy: {}", resp.status());
    let url = format!("{base}/function/echo");
    wait_until("echo answers", MINUTE, || async {
        let resp = http_client().post(&url).body("hi").send().await;
        resp.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// The API tokens of the corpus.
struct Tokens {
    /// Scope `read` in `openfaas-fn`.
    read: String,
    /// Scope `deploy` in `dev`.
    dev_deploy: String,
}

/// Creates the namespace `dev` and the [`Tokens`], as admin.
async fn make_tokens(base: &str, credentials: &Credentials) -> Tokens {
    let client = http_client();
    let (user, password) = (credentials.user(), Some(credentials.password()));
    let resp = client
        .post(format!("{base}/system/namespace/dev"))
        .basic_auth(user, password)
        .json(&json!({}))
        .send()
        .await
        .expect("create dev");
    assert_eq!(resp.status(), 201);
    let mut made = Vec::new();
    for (name, scope, namespace) in [("reader", "read", "openfaas-fn"), ("dev", "deploy", "dev")] {
        let body = json!({"name": name, "scopes": [scope], "namespaces": [namespace]});
        let resp = client
            .post(format!("{base}/system/tokens"))
            .basic_auth(user, password)
            .json(&body)
            .send()
            .await
            .expect("create a token");
        assert_eq!(resp.status(), 201, "token {name}");
        let token: Value = resp.json().await.expect("the token as JSON");
        made.push(token["token"].as_str().expect("the token").to_string());
    }
    let dev_deploy = made.pop().expect("two tokens");
    let read = made.pop().expect("two tokens");
    Tokens { read, dev_deploy }
}

/// The problem with `answer` to `case`, if any.
fn check(case: &Case, answer: &RawResponse) -> Option<String> {
    if answer.status != case.status {
        return Some(format!("status {} (body {:?})", answer.status, answer.body));
    }
    if !case.json {
        return None;
    }
    let message = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string));
    match message {
        Some(m) if !m.trim().is_empty() => None,
        _ => Some(format!("no JSON message: {:?}", answer.body)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_auth_corpus() {
    let corpus: Corpus = serde_json::from_str(CORPUS).expect("the corpus parses");
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let secrets = tempfile::tempdir().expect("a secrets folder");
    let data = tempfile::tempdir().expect("a data folder");
    let secrets_dir = secrets.path().to_str().expect("utf-8");
    let data_dir = data.path().to_str().expect("utf-8");
    let (mut gateway, mut provider, addr) = stack(&guard, &nats, secrets_dir, data_dir).await;
    let credentials = auth::load(secrets.path()).expect("the gateway wrote the credentials");
    let base = format!("http://{addr}");
    deploy_echo(&base, &credentials, &image.tag).await;
    let tokens = make_tokens(&base, &credentials).await;
    let fill = Placeholders::new(&credentials, &tokens);

    let before = state(&base, &credentials, &nats).await;
    let mut failures = Vec::new();
    let mut bodies = Vec::new();
    for case in &corpus.cases {
        let answer = raw_http::send(addr, &request_of(case, &fill)).await;
        if let Some(problem) = check(case, &answer) {
            failures.push(format!("{} ({}): {problem}", case.name, case.request));
        }
        if !case.read_only {
            let now = state(&base, &credentials, &nats).await;
            if now != before {
                failures.push(format!("{}: changed the state: {now:#?}", case.name));
            }
        }
        bodies.push((case.name.clone(), answer.body));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );

    gateway.terminate();
    provider.terminate();
    let logs = [
        ("gateway log", gateway.log()),
        ("provider log", provider.log()),
    ];
    let shown: HashMap<&str, &str> = [
        ("the admin password", credentials.password()),
        ("the wrong password", WRONG_PASSWORD),
        ("the secret value", SECRET_VALUE),
        ("the read token", &tokens.read),
        ("the deploy token", &tokens.dev_deploy),
    ]
    .into();
    for (what, text) in bodies
        .iter()
        .map(|(n, b)| (n.as_str(), b))
        .chain(logs.iter().map(|(n, l)| (*n, l)))
    {
        for (secret, value) in &shown {
            assert!(!text.contains(value), "{what} shows {secret}");
        }
    }
}
