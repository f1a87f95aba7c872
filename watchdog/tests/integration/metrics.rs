//! Request metrics on the metrics port: counted by code and method, in flight while a slow
//! request runs, probes not counted; and the binary serving them on `metrics_port`.

use std::net::SocketAddr;
use std::process::Stdio;

use crate::common::{client, echo_upstream, eventually, free_port, start_with_metrics};

/// The value of the sample written exactly `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

async fn scrape(addr: SocketAddr) -> String {
    let resp = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text format"
    );
    resp.text().await.unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_code_and_method_and_probes_are_not() {
    let upstream = format!("http://{}", echo_upstream().await);
    let (wd, metrics) = start_with_metrics(&[
        ("mode", "http"),
        ("fprocess", "sleep 3600"),
        ("upstream_url", &upstream),
    ])
    .await;
    let text = scrape(metrics).await;
    assert_eq!(
        sample(&text, "http_requests_in_flight"),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains("http_requests_total{"), "{text}");

    // The platform's probes, however many, are not requests.
    eventually("the watchdog is ready", || async {
        client()
            .get(wd.url("/_/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    for path in ["/_/health", "/_/ready", "/_/health"] {
        let resp = client().get(wd.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    // Function requests are, by status and (lower-case) method.
    for _ in 0..2 {
        let resp = client().post(wd.url("/a")).body("x").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let resp = client()
        .get(wd.url("/b?c=d"))
        .header("X-Echo-Status", "404")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    resp.bytes().await.unwrap();

    let post = r#"{code="200",method="post"}"#;
    let get = r#"{code="404",method="get"}"#;
    eventually("three requests counted", || async {
        let text = scrape(metrics).await;
        sample(&text, &format!("http_requests_total{post}")) == Some(2.0)
            && sample(&text, &format!("http_requests_total{get}")) == Some(1.0)
    })
    .await;
    let text = scrape(metrics).await;
    assert_eq!(
        sample(&text, &format!("http_request_duration_seconds_count{post}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("http_request_duration_seconds_count{get}")),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(r#"code="200",method="get""#),
        "health and ready left out: {text}"
    );
    assert_eq!(sample(&text, "http_requests_in_flight"), Some(0.0));

    // A slow request is in flight while it runs, and counted once it is done.
    let slow = tokio::spawn({
        let url = wd.url("/slow");
        async move {
            let resp = client()
                .get(url)
                .header("X-Echo-Sleep-Ms", "1500")
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap())
        }
    });
    eventually("the slow request is in flight", || async {
        sample(&scrape(metrics).await, "http_requests_in_flight") == Some(1.0)
    })
    .await;
    assert_eq!(slow.await.unwrap().0, 200);
    eventually("the slow request is done", || async {
        let text = scrape(metrics).await;
        sample(&text, "http_requests_in_flight") == Some(0.0)
            && sample(&text, r#"http_requests_total{code="200",method="get"}"#) == Some(1.0)
    })
    .await;
    let text = scrape(metrics).await;
    let sum = sample(
        &text,
        r#"http_request_duration_seconds_sum{code="200",method="get"}"#,
    )
    .unwrap();
    assert!(sum >= 1.5, "the slow request took its time: {sum}");

    // Only /metrics lives on the metrics port.
    let resp = client()
        .get(format!("http://{metrics}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn the_binary_serves_metrics_on_metrics_port() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watchdog"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", tmp.path())
        .env("fprocess", "cat")
        .env("port", "0")
        .env("metrics_port", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eventually("metrics are served on metrics_port", || async {
        match client().get(format!("http://{addr}/metrics")).send().await {
            Ok(resp) => resp
                .text()
                .await
                .is_ok_and(|t| sample(&t, "http_requests_in_flight") == Some(0.0)),
            Err(_) => false,
        }
    })
    .await;
    child.kill().await.unwrap();
}
