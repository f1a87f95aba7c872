//! `streaming` and `serializing` modes: a process per request.

use crate::common::{client, read_pid, start, wait_until_dead};

#[tokio::test]
async fn streaming_cat_echoes_the_body() {
    let wd = start(&[("fprocess", "cat")]).await;
    let resp = client()
        .post(wd.url("/"))
        .body("hello, watchdog")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(resp.headers().contains_key("x-duration-seconds"));
    assert_eq!(resp.text().await.unwrap(), "hello, watchdog");

    // A body larger than any pipe buffer streams through without deadlock.
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let resp = client()
        .post(wd.url("/"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), big);
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn serializing_passes_cgi_variables() {
    let wd = start(&[
        ("mode", "serializing"),
        ("content_type", "text/plain"),
        (
            "fprocess",
            r#"sh -c 'echo "method=$Http_Method path=$Http_Path query=$Http_Query call=$Http_X_Call_Id"; cat'"#,
        ),
    ])
    .await;
    let resp = client()
        .post(wd.url("/some/path?a=1&b=two"))
        .header("X-Call-Id", "call-123")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert!(resp.headers().contains_key("x-duration-seconds"));
    assert_eq!(
        resp.text().await.unwrap(),
        "method=POST path=/some/path query=a=1&b=two call=call-123\nthe body"
    );
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn non_zero_exit_is_500_with_stderr() {
    for mode in ["serializing", "streaming"] {
        let wd = start(&[
            ("mode", mode),
            ("fprocess", "sh -c 'echo broken >&2; exit 3'"),
        ])
        .await;
        let resp = client().post(wd.url("/")).body("x").send().await.unwrap();
        assert_eq!(resp.status(), 500, "{mode}");
        assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("exit status: 3") && body.contains("broken"),
            "{mode}: {body}"
        );
        wd.stop().await.unwrap();
    }
}

#[tokio::test]
async fn streaming_commits_200_once_output_started() {
    let wd = start(&[("fprocess", "sh -c 'echo partial; exit 1'")]).await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "partial\n");
    // Exit 0 without any output is an empty 200.
    let wd2 = start(&[("fprocess", "true")]).await;
    let resp = client().get(wd2.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    wd.stop().await.unwrap();
    wd2.stop().await.unwrap();
}

/// A function that records its own pid and its background child's pid in `dir`, then
/// waits for the child (600 s).
pub(crate) fn slow_function(dir: &std::path::Path) -> String {
    format!(
        "sh -c 'sleep 600 & echo $! > {d}/child.pid; echo $$ > {d}/sh.pid; wait'",
        d = dir.display()
    )
}

/// Waits until both processes of [`slow_function`] are gone.
pub(crate) async fn assert_killed(dir: &std::path::Path) {
    let sh = read_pid(&dir.join("sh.pid").display().to_string()).await;
    let child = read_pid(&dir.join("child.pid").display().to_string()).await;
    wait_until_dead(sh).await;
    wait_until_dead(child).await;
}

#[tokio::test]
async fn exec_timeout_is_504_and_kills_the_process_group() {
    for mode in ["serializing", "streaming"] {
        let dir = tempfile::tempdir().unwrap();
        let fprocess = slow_function(dir.path());
        let wd = start(&[
            ("mode", mode),
            ("exec_timeout", "1s"),
            ("fprocess", &fprocess),
        ])
        .await;
        let resp = client()
            .post(wd.url("/"))
            .body("ignored")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 504, "{mode}");
        assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
        assert!(resp.headers().contains_key("x-duration-seconds"));
        assert!(resp.text().await.unwrap().contains("timed out after 1s"));
        assert_killed(dir.path()).await;
        wd.stop().await.unwrap();
    }
}

#[tokio::test]
async fn x_timeout_shortens_exec_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fprocess = slow_function(dir.path());
    let wd = start(&[
        ("mode", "serializing"),
        ("exec_timeout", "10m"),
        ("fprocess", &fprocess),
    ])
    .await;
    let resp = client()
        .get(wd.url("/"))
        .header("X-Timeout", "500ms")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("timed out after 500ms"));
    assert_killed(dir.path()).await;
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn timeout_after_output_cuts_the_stream_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let fprocess = format!(
        "sh -c 'echo started; sleep 600 & echo $! > {d}/child.pid; echo $$ > {d}/sh.pid; wait'",
        d = dir.path().display()
    );
    let wd = start(&[("exec_timeout", "1s"), ("fprocess", &fprocess)]).await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "output started, so the status was committed"
    );
    assert!(
        resp.bytes().await.is_err(),
        "the body must end as incomplete, not look complete"
    );
    assert_killed(dir.path()).await;
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn client_going_away_kills_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let fprocess = slow_function(dir.path());
    let wd = start(&[("exec_timeout", "0"), ("fprocess", &fprocess)]).await;
    let url = wd.url("/");
    let request = tokio::spawn(async move { client().get(url).send().await });
    read_pid(&dir.path().join("child.pid").display().to_string()).await;
    request.abort();
    assert_killed(dir.path()).await;
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn ready_path_runs_the_function() {
    let wd = start(&[
        ("mode", "serializing"),
        ("ready_path", "/ready"),
        (
            "fprocess",
            r#"sh -c 'if [ "$Http_Path" = /ready ]; then exit 1; fi; echo hi'"#,
        ),
    ])
    .await;
    let resp = client().get(wd.url("/_/ready")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        500,
        "the function's failure decides readiness"
    );
    let resp = client().get(wd.url("/_/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        client()
            .get(wd.url("/x"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "hi\n"
    );
    wd.stop().await.unwrap();
}
