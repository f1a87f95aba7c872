//! `http` mode: one long-running process, requests reverse-proxied to `upstream_url`.

use serde_json::Value;

use crate::common::{
    SOON, client, echo_upstream, eventually, free_port, read_pid, start, wait_until_dead,
};

#[tokio::test]
async fn proxies_method_path_query_headers_and_body() {
    let upstream = echo_upstream().await;
    let url = format!("http://{upstream}");
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
    ])
    .await;

    let resp = client()
        .put(wd.url("/a/b?x=1&y=two"))
        .header("X-Custom", "value")
        .header("X-Echo-Status", "201")
        .header("X-Echo-Header", "X-From-Upstream: yes")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "status copied back");
    assert_eq!(
        resp.headers()["x-from-upstream"],
        "yes",
        "headers copied back"
    );
    assert_eq!(resp.headers()["content-type"], "application/json");
    let seconds: f64 = resp.headers()["x-duration-seconds"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 0.0);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["body"], "payload");
    assert_eq!(echo["headers"]["x-custom"][0], "value");
    assert_eq!(
        echo["headers"]["host"][0],
        wd.addr.to_string(),
        "the client's Host is kept"
    );

    // A streamed (chunked) request body stays streamed...
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("one,"), Ok("two")];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echo: Value = client()
        .post(wd.url("/s"))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["body"], "one,two");
    assert_eq!(echo["headers"]["transfer-encoding"][0], "chunked");
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn buffered_request_bodies_get_a_content_length() {
    let upstream = echo_upstream().await;
    let url = format!("http://{upstream}");
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
        ("http_buffer_req_body", "true"),
    ])
    .await;
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("one,"), Ok("two")];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echo: Value = client()
        .post(wd.url("/b"))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["body"], "one,two");
    assert_eq!(echo["headers"]["content-length"][0], "7");
    assert!(echo["headers"].get("transfer-encoding").is_none());
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let upstream = echo_upstream().await;
    let url = format!("http://{upstream}");
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
        ("exec_timeout", "1s"),
    ])
    .await;
    let resp = client()
        .get(wd.url("/"))
        .header("X-Echo-Sleep-Ms", "30000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
    assert!(resp.headers().contains_key("x-duration-seconds"));
    assert!(resp.text().await.unwrap().contains("timed out"));

    // X-Timeout shortens the limit too.
    let resp = client()
        .get(wd.url("/"))
        .header("X-Echo-Sleep-Ms", "30000")
        .header("X-Timeout", "200ms")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("200ms"));
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn dead_upstream_is_502() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
    ])
    .await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
    assert!(resp.headers().contains_key("x-duration-seconds"));
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("cannot reach the function's upstream")
    );
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_ready_only_once_the_upstream_listens() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
    ])
    .await;
    for path in ["/_/health", "/_/ready"] {
        let resp = client().get(wd.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path} while nothing listens upstream");
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("not accepting connections"),
            "{path}"
        );
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(ferry_test_functions::serve(listener, Default::default()));
    for path in ["/_/health", "/_/ready"] {
        let url = wd.url(path);
        eventually(&format!("{path} after the upstream listens"), || {
            let url = url.clone();
            async move { client().get(url).send().await.unwrap().status() == 200 }
        })
        .await;
    }
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn ready_path_is_asked_upstream() {
    let upstream = echo_upstream().await;
    let url = format!("http://{upstream}");
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &url),
        ("ready_path", "/healthz"),
    ])
    .await;
    let resp = client().get(wd.url("/_/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/healthz");
    let resp = client()
        .get(wd.url("/_/ready"))
        .header("X-Echo-Status", "418")
        .send()
        .await;
    assert_eq!(resp.unwrap().status(), 418, "the function's answer decides");
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn child_exit_stops_the_watchdog() {
    for fprocess in ["sh -c 'exit 3'", "true"] {
        let url = format!("http://127.0.0.1:{}", free_port());
        let mut wd = start(&[
            ("mode", "http"),
            ("fprocess", fprocess),
            ("upstream_url", &url),
        ])
        .await;
        let error = wd.join().await.unwrap_err();
        assert!(
            matches!(error, ferry_watchdog::WatchdogError::ChildExited { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("exited"), "{error}");
    }
}

#[tokio::test]
async fn shutdown_terminates_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid").display().to_string();
    let fprocess = format!("sh -c 'echo $$ > {pid_file}; exec sleep 3600'");
    let url = format!("http://127.0.0.1:{}", free_port());
    let wd = start(&[
        ("mode", "http"),
        ("fprocess", &fprocess),
        ("upstream_url", &url),
    ])
    .await;
    let pid = read_pid(&pid_file).await;
    tokio::time::timeout(SOON, wd.stop())
        .await
        .unwrap()
        .unwrap();
    wait_until_dead(pid).await;
}
