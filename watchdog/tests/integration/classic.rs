//! `classic` mode: OpenFaaS's classic watchdog, a process per request on every path but
//! `/_/health`.

use crate::common::{client, eventually, spawn_binary, start, start_saturated};

/// A function that appends its `Http_Path` to `dir/calls`, then answers `ran`.
fn recording_function(dir: &std::path::Path) -> String {
    format!(
        "sh -c 'echo \"$Http_Path\" >> {}/calls; echo ran'",
        dir.display()
    )
}

fn calls(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn ready_runs_the_function_and_health_follows_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", &recording_function(dir.path())),
    ])
    .await;

    // No readiness endpoint: /_/ready is a function request like any other.
    let resp = client().get(wd.url("/_/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-duration-seconds"));
    assert_eq!(resp.text().await.unwrap(), "ran\n");
    assert_eq!(calls(dir.path()), ["/_/ready"]);

    // Health is the watchdog's own, and follows the lock file.
    let resp = client().get(wd.url("/_/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "OK");
    let lock = wd.dir.path().join(".lock");
    std::fs::remove_file(&lock).unwrap();
    let health = |wd: &crate::common::Watchdog| {
        let url = wd.url("/_/health");
        async move { client().get(url).send().await.unwrap().status() }
    };
    assert_eq!(health(&wd).await, 503, "no lock file, unhealthy");
    std::fs::write(&lock, b"").unwrap();
    assert_eq!(health(&wd).await, 200);
    let resp = client().post(wd.url("/_/health")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(calls(dir.path()), ["/_/ready"], "health never forks");

    // Only GET, POST, PUT, PATCH and DELETE fork.
    let resp = client().head(wd.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = client().put(wd.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(calls(dir.path()), ["/_/ready", "/x"]);
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn suppress_lock_leaves_health_to_the_flag() {
    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", "cat"),
        ("suppress_lock", "true"),
    ])
    .await;
    let resp = client().get(wd.url("/_/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!wd.dir.path().join(".lock").exists());
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn non_zero_exit_is_500_with_the_output() {
    let fprocess = "sh -c 'echo out; echo err >&2; exit 3'";
    let wd = start(&[("mode", "classic"), ("fprocess", fprocess)]).await;
    let resp = client().post(wd.url("/")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(body.contains("exit status: 3"), "{body}");
    assert!(body.contains("out\nerr"), "combined: stderr too: {body}");
    wd.stop().await.unwrap();

    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", fprocess),
        ("combine_output", "false"),
    ])
    .await;
    let resp = client().post(wd.url("/")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("exit status: 3") && body.contains("out") && !body.contains("err"),
        "not combined: stdout only: {body}"
    );
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn output_body_cgi_variables_and_content_type() {
    let fprocess = r#"sh -c 'echo "$Http_Method $Http_Path $Http_Query $Http_Content_Length $Http_ContentLength $Http_X_Call_Id"; echo warning >&2; cat'"#;
    let wd = start(&[("mode", "classic"), ("fprocess", fprocess)]).await;
    let resp = client()
        .post(wd.url("/fn/a?b=c"))
        .header("X-Call-Id", "call-1")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        resp.text().await.unwrap(),
        "POST /fn/a b=c 5 5 call-1\nwarning\nhello",
        "stdout and stderr in the order written, then the body"
    );
    let resp = client()
        .post(wd.url("/"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    wd.stop().await.unwrap();

    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", fprocess),
        ("cgi_headers", "false"),
        ("combine_output", "false"),
        ("content_type", "text/csv"),
    ])
    .await;
    let resp = client()
        .get(wd.url("/p?q=1"))
        .header("X-Call-Id", "call-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv");
    assert_eq!(resp.text().await.unwrap(), "     \n", "no Http_* variables");
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn ready_counts_toward_max_inflight() {
    let (wd, slow, _dir) = start_saturated("classic").await;
    let resp = client().get(wd.url("/_/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-openfaas-internal"], "faas-middleware");
    assert_eq!(slow.await.unwrap().text().await.unwrap(), "done\n");
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn exec_timeout_is_off_by_default_and_504_when_set() {
    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", "sh -c 'sleep 1; echo slept'"),
    ])
    .await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "slept\n");
    wd.stop().await.unwrap();

    let wd = start(&[
        ("mode", "classic"),
        ("fprocess", "sleep 600"),
        ("exec_timeout", "500ms"),
    ])
    .await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("timed out after 500ms"));
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn the_binary_logs_each_fork_as_the_classic_watchdog() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr, logs) =
        spawn_binary(tmp.path(), &[("mode", "classic"), ("fprocess", "cat")]).await;
    let url = |path: &str| format!("http://{addr}{path}");
    for _ in 0..3 {
        let resp = client().get(url("/_/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    for path in ["/", "/_/ready", "/other"] {
        let resp = client().post(url(path)).body("hello").send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), "hello");
    }
    eventually("three success lines", || {
        let n = logs.count("Wrote 5 Bytes - Duration: ");
        async move { n >= 3 }
    })
    .await;
    assert_eq!(
        logs.count("Forking fprocess."),
        3,
        "once per function request, never for /_/health:\n{}",
        logs.text()
    );
    assert_eq!(
        logs.count("Wrote 5 Bytes - Duration: "),
        3,
        "{}",
        logs.text()
    );
    let text = logs.text();
    let wrote = text
        .lines()
        .find(|line| line.contains("Wrote 5 Bytes"))
        .unwrap();
    let secs = wrote.rsplit_once("Duration: ").unwrap().1;
    let number = secs.strip_suffix('s').expect("seconds end in s");
    assert_eq!(number.split_once('.').unwrap().1.len(), 6, "{wrote}");
    number.parse::<f64>().expect("a number of seconds");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
