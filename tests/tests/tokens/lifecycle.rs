//! A token's life: created by the admin (`201`, the token shown once), refused when the
//! request is wrong (`400`, `409`), listed without any secret, stored as a SHA-256 hash only,
//! usable on a second gateway (a real `gateway` process on the same NATS) and revoked on
//! both within about a second; the second gateway logs no token even at debug level; and a
//! gateway without `basic_auth` refuses to create tokens and checks none.

use std::time::{Duration, Instant};

use ferry_proto::jetstream::TOKEN_BUCKET;
use ferry_tests::gateway::TestGateway;
use ferry_tests::process::ServiceProcess;
use ferry_tests::{free_port, http_client, wait_until};
use ring::digest::{SHA256, digest};
use serde_json::{Value, json};

use crate::common::{Auth, FN, MINUTE, Stack, message, stack};

/// `GET /system/functions` with `token` on the gateway at `base`: the status.
async fn use_token(base: &str, token: &str) -> u16 {
    http_client()
        .get(format!("{base}/system/functions"))
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Refused token requests: `400` (or `409`) with a JSON message containing `says`.
async fn refused(s: &Stack) {
    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"name":"ci","scopes":["read"],"namespaces":["*"]}"#,
            409,
            "exists",
        ),
        (
            r#"{"name":"CI","scopes":["read"],"namespaces":["*"]}"#,
            400,
            "token name",
        ),
        (
            r#"{"name":"x","scopes":["write"],"namespaces":["*"]}"#,
            400,
            "unknown scope \"write\"",
        ),
        (
            r#"{"name":"x","scopes":[],"namespaces":["*"]}"#,
            400,
            "scopes",
        ),
        (r#"{"name":"x","scopes":["read"]}"#, 400, "namespaces"),
        (
            r#"{"name":"x","scopes":["read"],"namespaces":["*","dev"]}"#,
            400,
            "namespaces",
        ),
        (
            r#"{"name":"x","scopes":["admin"],"namespaces":["dev"]}"#,
            400,
            "admin",
        ),
        (
            r#"{"name":"x","scopes":["read"],"namespace":["dev"]}"#,
            400,
            "unknown field",
        ),
        ("not json", 400, "expected"),
    ];
    for (body, want, says) in cases {
        let (status, answer) = s
            .send("POST", "/system/tokens", Auth::Basic, Some(body))
            .await;
        assert_eq!(status, *want, "{body}: {answer}");
        assert!(message(&answer).contains(says), "{body}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_created_listed_stored_hashed_shared_and_revoked() {
    let s = stack(&[]).await;
    let first = s.token("first", &["read"], &["*"]).await;
    let (token, created) = create(&s).await;
    refused(&s).await;
    listed_and_stored_hashed(&s, &token, &created).await;
    let hash = hex::encode(digest(&SHA256, token.as_bytes()));
    let other = shared_and_revoked(&s, &token, &first).await;
    let again = s.token("ci", &["read"], &["*"]).await;
    assert_eq!(use_token(&s.gateway.url(""), &again).await, 200);
    assert_eq!(
        use_token(&s.gateway.url(""), &token).await,
        401,
        "stays dead"
    );
    let log = other.log();
    assert!(log.contains("gateway listening"), "{log}");
    for secret in [&token, &first, &again, &hash] {
        assert!(
            !log.contains(secret.as_str()),
            "the second gateway logged a token"
        );
    }
    drop(other);
    without_basic_auth(&s).await;
}

/// `ci`, created with the basic-auth credentials: its token and the whole answer.
async fn create(s: &Stack) -> (String, Value) {
    let request = r#"{"name":"ci","scopes":["read","deploy","read"],"namespaces":["openfaas-fn"]}"#;
    let (status, body) = s
        .send("POST", "/system/tokens", Auth::Basic, Some(request))
        .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ferry_") && token.len() == 46, "{token}");
    assert!(token[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["scopes"], json!(["deploy", "read"]));
    assert_eq!(created["namespaces"], json!([FN]));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(use_token(&s.gateway.url(""), &token).await, 200);
    (token, created)
}

/// `GET /system/tokens` shows no secret; the bucket holds the hash, not the token.
async fn listed_and_stored_hashed(s: &Stack, token: &str, created: &Value) {
    let hash = hex::encode(digest(&SHA256, token.as_bytes()));
    let (status, body) = s.send("GET", "/system/tokens", Auth::Basic, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains(&token[6..]) && !body.contains(&hash),
        "{body}"
    );
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ci", "first"]);
    let ci = listed[0].as_object().unwrap();
    let mut keys: Vec<&str> = ci.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "name", "namespaces", "scopes"]);
    assert_eq!(ci["createdAt"], created["createdAt"]);
    let js = async_nats::jetstream::new(s.nats.connect().await);
    let bucket = js
        .get_key_value(TOKEN_BUCKET)
        .await
        .expect("the token bucket");
    let stored = bucket.get("ci").await.unwrap().expect("ci is stored");
    let stored = String::from_utf8(stored.to_vec()).unwrap();
    assert!(
        !stored.contains(&token[6..]),
        "the token is in the bucket: {stored}"
    );
    assert!(stored.contains(&hash), "{stored}");
}

/// A second gateway, a process of its own on the same NATS, logging everything: tokens made
/// on either work on both, and `ci` revoked on the first is refused by both, by the second
/// within about a second. The second gateway, to read its log.
async fn shared_and_revoked(s: &Stack, token: &str, first: &str) -> ServiceProcess {
    let port = free_port();
    let other = format!("http://127.0.0.1:{port}");
    let env = vec![
        ("functions_provider_url", s.provider.url("")),
        ("nats_url", s.nats.url()),
        ("basic_auth", "true".to_string()),
        (
            "secret_mount_path",
            s.secrets.path().to_str().unwrap().to_string(),
        ),
        ("bind", "127.0.0.1".to_string()),
        ("port", port.to_string()),
    ];
    let process =
        ServiceProcess::start_logged_async("ferry-gateway", "gateway", env, "debug").await;
    wait_until("the second gateway knows the token", MINUTE, || async {
        use_token(&other, token).await == 200
    })
    .await;
    let shared = http_client()
        .post(format!("{other}/system/tokens"))
        .basic_auth(s.admin.user(), Some(s.admin.password()))
        .body(r#"{"name":"shared","scopes":["read"],"namespaces":["*"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(shared.status(), 201);
    let shared: Value = shared.json().await.unwrap();
    let shared = shared["token"].as_str().unwrap().to_string();
    let here = s.gateway.url("");
    wait_until(
        "this gateway knows the other's token",
        Duration::from_secs(2),
        || async { use_token(&here, &shared).await == 200 },
    )
    .await;
    assert!(
        !process.log().contains(&shared),
        "the second gateway logged a token"
    );

    let (status, body) = s
        .send("DELETE", "/system/tokens/ci", Auth::Basic, None)
        .await;
    assert_eq!((status, body.as_str()), (204, ""));
    let revoked = Instant::now();
    assert_eq!(use_token(&here, token).await, 401, "refused here at once");
    wait_until(
        "the second gateway refuses the revoked token",
        Duration::from_secs(2),
        || async { use_token(&other, token).await == 401 },
    )
    .await;
    println!(
        "revocation reached the second gateway after {:?}",
        revoked.elapsed()
    );
    assert_eq!(use_token(&other, first).await, 200, "others keep working");
    for name in ["ci", "never"] {
        let path = format!("/system/tokens/{name}");
        let (status, body) = s.send("DELETE", &path, Auth::Basic, None).await;
        assert_eq!(status, 404, "{name}: {body}");
    }
    let (_, body) = s.send("GET", "/system/tokens", Auth::Basic, None).await;
    assert!(!body.contains("\"ci\""), "{body}");
    process
}

/// Without basic_auth: no tokens are made, none is checked.
async fn without_basic_auth(s: &Stack) {
    let open = TestGateway::start(&s.provider.url(""), &s.nats.url(), &[]).await;
    let made = http_client()
        .post(open.url("/system/tokens"))
        .body(r#"{"name":"open","scopes":["admin"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 403);
    assert!(made.text().await.unwrap().contains("basic_auth=true"));
    let listed = http_client()
        .get(open.url("/system/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let unchecked = http_client()
        .get(open.url("/system/dead-letters"))
        .bearer_auth(format!("ferry_{}", "z".repeat(40)))
        .send()
        .await
        .unwrap();
    assert_eq!(unchecked.status(), 200);
}
