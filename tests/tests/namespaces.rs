//! Namespaces end to end, as faas-cli 0.18 (through OpenFaaS' go-sdk) speaks them: a real
//! provider-docker with real function containers, and the gateway in front of it.
//!
//! `POST /system/namespace/` creates (`201`, `409` if it exists), `GET` and `PUT`
//! `/system/namespace/{name}` read (`200`) and replace labels and annotations (`202`),
//! `DELETE` removes (`202`) unless the namespace is the default one or still holds functions
//! or secrets (`409`); unknown ones answer `404`, invalid requests `400` without changing
//! anything. The plural `/system/namespaces/{name}` works too; namespaces that hold functions
//! are listed without being created; created ones survive a provider restart. Through the
//! gateway, with `basic_auth` on, every one of these routes needs the credentials.

use std::os::unix::fs::PermissionsExt;

use ferry_tests::auth::AuthedStack;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client};
use serde_json::{Value, json};

/// Sends `method path` with a body; asserts the status; returns the JSON answer
/// (`Value::Null` if it is not JSON).
async fn expect(provider: &TestProvider, method: &str, path: &str, body: &str, want: u16) -> Value {
    let (status, answer) = provider
        .call(method, path, (!body.is_empty()).then_some(body))
        .await;
    assert_eq!(status, want, "{method} {path} {body}: {answer}");
    answer
}

/// `{"message": ...}` of an error answer.
fn message(answer: &Value) -> &str {
    answer["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {answer}"))
}

async fn list(provider: &TestProvider) -> Value {
    expect(provider, "GET", "/system/namespaces", "", 200).await
}

async fn deploy(provider: &TestProvider, image: &str, name: &str, namespace: &str) {
    let body = json!({"service": name, "image": image, "namespace": namespace}).to_string();
    expect(provider, "POST", "/system/functions", &body, 202).await;
}

/// faas-cli's create, update and remove bodies (go-sdk adds the `openfaas` label).
fn cli_body(name: &str, labels: Value, annotations: Value) -> String {
    json!({"name": name, "labels": labels, "annotations": annotations}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_update_list_delete_and_persist() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;

    create_and_get(&provider).await;
    invalid_requests_change_nothing(&provider).await;
    update_replaces_labels_and_annotations(&provider).await;
    delete_only_what_is_empty(&provider, &echo.tag).await;

    // Created namespaces survive a restart, in owner-only files.
    let keep = cli_body("keep", json!({"tier": "gold"}), json!({"owner": "ops"}));
    expect(&provider, "POST", "/system/namespace/", &keep, 201).await;
    let kept = expect(&provider, "GET", "/system/namespace/keep", "", 200).await;
    assert_eq!(kept["labels"], json!({"openfaas": "1", "tier": "gold"}));
    provider.stop().await;
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    let reread = expect(&provider, "GET", "/system/namespace/keep", "", 200).await;
    assert_eq!(reread, kept);
    let all = json!(["openfaas-fn", "implicit", "keep"]);
    assert_eq!(list(&provider).await, all);
    let mode = |p: &str| {
        let path = data.path().join(p);
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("namespaces"), 0o700);
    assert_eq!(mode("namespaces/keep.json"), 0o600);
}

/// The default namespace; `dev` created as faas-cli does, `staging` named in the path.
async fn create_and_get(provider: &TestProvider) {
    assert_eq!(list(provider).await, json!(["openfaas-fn"]));
    let default = expect(provider, "GET", "/system/namespace/openfaas-fn", "", 200).await;
    let want = json!({"name": "openfaas-fn", "labels": {"openfaas": "1"}, "annotations": {}});
    assert_eq!(default, want);

    // Got back under both paths; a second create conflicts.
    let labels = json!({"openfaas": "1", "team": "a"});
    let dev = cli_body("dev", labels.clone(), json!({"openfaas": "1"}));
    expect(provider, "POST", "/system/namespace/", &dev, 201).await;
    let want = json!({"name": "dev", "labels": labels, "annotations": {"openfaas": "1"}});
    for path in ["/system/namespace/dev", "/system/namespaces/dev"] {
        assert_eq!(expect(provider, "GET", path, "", 200).await, want);
    }
    let conflict = expect(provider, "POST", "/system/namespace/", &dev, 409).await;
    assert!(message(&conflict).contains("already exists"), "{conflict}");

    // The name may be in the path only; the openfaas label is added.
    expect(provider, "POST", "/system/namespace/staging", "{}", 201).await;
    let staging = expect(provider, "GET", "/system/namespace/staging", "", 200).await;
    assert_eq!(staging["labels"], json!({"openfaas": "1"}));
    assert_eq!(staging["annotations"], json!({}));
}

/// `400` with a message saying what is wrong, and no change; `404` for unknown namespaces.
async fn invalid_requests_change_nothing(provider: &TestProvider) {
    let before = expect(provider, "GET", "/system/namespace/dev", "", 200).await;
    let ns = "/system/namespace/";
    let dev = "/system/namespace/dev";
    let prod = r#"{"name":"prod"}"#;
    let bad_label = r#"{"name":"x","labels":{"openfaas":"0"}}"#;
    let cases = [
        ("POST", ns, "{", "malformed JSON"),
        ("POST", ns, "", "body is empty"),
        ("POST", ns, r#"{"labels":{}}"#, "\"name\" field"),
        (
            "POST",
            ns,
            r#"{"name":"Bad_Name"}"#,
            "invalid namespace name",
        ),
        ("POST", "/system/namespace/other", prod, "does not match"),
        ("POST", ns, bad_label, "label openfaas"),
        ("PUT", dev, "{", "malformed JSON"),
        ("PUT", dev, prod, "does not match"),
        ("DELETE", dev, prod, "does not match"),
        ("GET", ns, "", "name the namespace in the path"),
        ("DELETE", "/system/namespace", "", "name the namespace"),
        ("GET", "/system/namespace/a.b", "", "invalid namespace name"),
    ];
    for (method, path, body, words) in cases {
        let answer = expect(provider, method, path, body, 400).await;
        assert!(
            message(&answer).contains(words),
            "{method} {path}: {answer}"
        );
    }
    let all = json!(["openfaas-fn", "dev", "staging"]);
    assert_eq!(list(provider).await, all);
    assert_eq!(expect(provider, "GET", dev, "", 200).await, before);

    let missing = expect(provider, "GET", "/system/namespace/nope", "", 404).await;
    assert_eq!(message(&missing), "namespace nope not found");
    let nope = r#"{"name":"nope"}"#;
    expect(provider, "PUT", "/system/namespace/nope", nope, 404).await;
    expect(provider, "DELETE", "/system/namespace/nope", "", 404).await;
}

/// `PUT` replaces labels and annotations, under either path.
async fn update_replaces_labels_and_annotations(provider: &TestProvider) {
    let changed = cli_body("dev", json!({"openfaas": "1", "team": "b"}), json!({}));
    expect(provider, "PUT", "/system/namespace/dev", &changed, 202).await;
    let dev = expect(provider, "GET", "/system/namespace/dev", "", 200).await;
    let want = json!({"name": "dev", "labels": {"openfaas": "1", "team": "b"}, "annotations": {}});
    assert_eq!(dev, want);
    let note = r#"{"annotations":{"note":"x"}}"#;
    expect(provider, "PUT", "/system/namespaces/staging", note, 202).await;
    let staging = expect(provider, "GET", "/system/namespaces/staging", "", 200).await;
    assert_eq!(staging["annotations"], json!({"note": "x"}));
    assert_eq!(staging["labels"], json!({"openfaas": "1"}));
}

/// Deploying into a namespace never created makes it appear; the default namespace and those
/// holding functions or secrets are not deleted until emptied.
async fn delete_only_what_is_empty(provider: &TestProvider, image: &str) {
    deploy(provider, image, "hello", "implicit").await;
    let all = json!(["openfaas-fn", "dev", "implicit", "staging"]);
    assert_eq!(list(provider).await, all);
    let implicit = expect(provider, "GET", "/system/namespace/implicit", "", 200).await;
    assert_eq!(implicit["labels"], json!({"openfaas": "1"}));
    let body = cli_body("implicit", json!({}), json!({}));
    expect(provider, "POST", "/system/namespace/", &body, 409).await;
    expect(provider, "DELETE", "/system/namespace/implicit", "", 409).await;

    let refused = expect(provider, "DELETE", "/system/namespace/openfaas-fn", "", 409).await;
    assert!(message(&refused).contains("default namespace"), "{refused}");
    deploy(provider, image, "echo", "dev").await;
    let remove_dev = cli_body("dev", json!({"openfaas": "1"}), json!({}));
    let refused = expect(
        provider,
        "DELETE",
        "/system/namespace/dev",
        &remove_dev,
        409,
    )
    .await;
    let words = "functions echo; remove them first";
    assert!(message(&refused).contains(words), "{refused}");
    let secret = json!({"name": "db", "namespace": "staging", "value": "v"}).to_string();
    expect(provider, "POST", "/system/secrets", &secret, 201).await;
    let refused = expect(provider, "DELETE", "/system/namespaces/staging", "", 409).await;
    assert!(message(&refused).contains("secrets db"), "{refused}");

    let remove_echo = json!({"functionName": "echo", "namespace": "dev"}).to_string();
    expect(provider, "DELETE", "/system/functions", &remove_echo, 202).await;
    expect(
        provider,
        "DELETE",
        "/system/namespace/dev",
        &remove_dev,
        202,
    )
    .await;
    expect(provider, "GET", "/system/namespace/dev", "", 404).await;
    expect(
        provider,
        "DELETE",
        "/system/namespace/dev",
        &remove_dev,
        404,
    )
    .await;
    let remove_db = json!({"name": "db", "namespace": "staging"}).to_string();
    expect(provider, "DELETE", "/system/secrets", &remove_db, 200).await;
    expect(provider, "DELETE", "/system/namespaces/staging", "", 202).await;
    assert_eq!(list(provider).await, json!(["openfaas-fn", "implicit"]));
}

/// Sends `method url` with `body` and optional basic-auth credentials; status,
/// `WWW-Authenticate` and the JSON answer.
async fn send(
    method: &str,
    url: &str,
    body: &str,
    credentials: Option<(&str, &str)>,
) -> (u16, String, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http_client().request(method, url).body(body.to_string());
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_with_basic_auth() {
    let guard = DockerGuard::new().await;
    let nats = NatsServer::start_async().await;
    let stack = AuthedStack::start(&guard, &nats).await;
    let (gateway, provider, credentials) = (&stack.gateway, &stack.provider, &stack.credentials);
    let good = Some((credentials.user(), credentials.password()));
    let wrong_password = format!("{}-wrong", credentials.password());
    let wrong = Some((credentials.user(), wrong_password.as_str()));

    // Every namespace route of the gateway and of the provider needs the credentials.
    let ci = cli_body("ci", json!({"openfaas": "1"}), json!({"openfaas": "1"}));
    let routes = [
        ("GET", "/system/namespaces"),
        ("GET", "/system/namespace/openfaas-fn"),
        ("POST", "/system/namespace/"),
        ("PUT", "/system/namespace/ci"),
        ("DELETE", "/system/namespace/ci"),
        ("PUT", "/system/namespaces/ci"),
    ];
    for base in [gateway.url(""), provider.url("")] {
        for (method, path) in routes {
            for given in [None, wrong] {
                let url = format!("{base}{path}");
                let (status, challenge, answer) = send(method, &url, &ci, given).await;
                assert_eq!(status, 401, "{method} {url}: {answer}");
                assert_eq!(challenge, "Basic realm=\"Restricted\"", "{method} {url}");
                message(&answer);
            }
        }
    }

    // With them, through the gateway: faas-cli's create, get, list, update and remove.
    let url = |path: &str| gateway.url(path);
    let (status, _, answer) = send("GET", &url("/system/namespaces"), "", good).await;
    assert_eq!(
        (status, answer),
        (200, json!(["openfaas-fn"])),
        "nothing was created"
    );
    let (status, _, answer) = send("POST", &url("/system/namespace/"), &ci, good).await;
    assert_eq!(status, 201, "{answer}");
    let (status, _, answer) = send("POST", &url("/system/namespace/"), &ci, good).await;
    assert_eq!(status, 409, "{answer}");
    let (status, _, answer) = send("GET", &url("/system/namespace/ci"), "", good).await;
    let want = json!({"name": "ci", "labels": {"openfaas": "1"}, "annotations": {"openfaas": "1"}});
    assert_eq!((status, answer), (200, want));
    let (status, _, answer) = send("GET", &url("/system/namespaces"), "", good).await;
    assert_eq!((status, answer), (200, json!(["openfaas-fn", "ci"])));
    let update = cli_body("ci", json!({"openfaas": "1", "stage": "test"}), json!({}));
    let (status, _, answer) = send("PUT", &url("/system/namespace/ci"), &update, good).await;
    assert_eq!(status, 202, "{answer}");
    let (status, _, answer) = send("GET", &url("/system/namespaces/ci"), "", good).await;
    assert_eq!((status, &answer["labels"]["stage"]), (200, &json!("test")));
    let remove = cli_body("ci", json!({"openfaas": "1"}), json!(null));
    let (status, _, answer) = send("DELETE", &url("/system/namespace/ci"), &remove, good).await;
    assert_eq!(status, 202, "{answer}");
    let (status, _, answer) = send("GET", &url("/system/namespace/ci"), "", good).await;
    assert_eq!((status, message(&answer)), (404, "namespace ci not found"));
}
