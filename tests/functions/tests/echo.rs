//! The echo server over real HTTP.

use serde_json::Value;

async fn start(options: ferry_test_functions::Options) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ferry_test_functions::serve(listener, options));
    format!("http://{addr}")
}

#[tokio::test]
async fn echoes_the_request_as_json() {
    let base = start(Default::default()).await;
    ferry_runtime::tls::install();
    let resp = reqwest::Client::new()
        .patch(format!("{base}/some/path?a=1&b=2"))
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("X-Echo-Status", "202")
        .header("X-Echo-Sleep-Ms", "10")
        .header("X-Echo-Header", "X-Added: yes")
        .body("h\u{e9}llo")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-added"], "yes");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "a=1&b=2");
    assert_eq!(echo["body"], "h\u{e9}llo");
    assert_eq!(
        echo["headers"]["x-multi"],
        serde_json::json!(["one", "two"])
    );
    assert!(
        echo["env"]["PATH"].is_string(),
        "the process environment is listed"
    );
    assert!(echo["hostname"].is_string());

    let echo: Value = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo["method"].as_str(), echo["query"].as_str()),
        (Some("GET"), Some(""))
    );
}

#[tokio::test]
async fn serves_secrets_as_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), b"s3cr3t\x00\xff").unwrap();
    let base = start(ferry_test_functions::Options {
        secrets_dir: dir.path().into(),
    })
    .await;
    let resp = reqwest::get(format!("{base}/_/secret/api-key"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"s3cr3t\x00\xff");
    for missing in ["nope", "a%2Fb"] {
        let resp = reqwest::get(format!("{base}/_/secret/{missing}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{missing}");
    }
}

#[tokio::test]
async fn fails_the_first_requests_of_a_call_and_counts_them() {
    ferry_runtime::tls::install();
    let base = start(Default::default()).await;
    let client = reqwest::Client::new();
    let call = |id: &'static str| {
        client
            .post(format!("{base}/"))
            .header("X-Call-Id", id)
            .header("X-Echo-Fail-Times", "2")
            .header("X-Echo-Fail-Status", "429")
            .send()
    };
    assert_eq!(call("a").await.unwrap().status(), 429);
    assert_eq!(call("a").await.unwrap().status(), 429);
    assert_eq!(call("a").await.unwrap().status(), 200);
    assert_eq!(call("b").await.unwrap().status(), 429);
    let stats: Value = client
        .get(format!("{base}/_/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["calls"]["a"].as_array().unwrap().len(), 3);
    assert_eq!(stats["calls"]["b"].as_array().unwrap().len(), 1);
}
