//! `max_inflight`, health endpoints, `write_timeout`.

use crate::common::{client, eventually, start, start_saturated};

#[tokio::test]
async fn max_inflight_rejects_the_excess_with_faas_middleware_429() {
    let (wd, slow, _dir) = start_saturated("serializing").await;
    let resp = client().get(wd.url("/second")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-openfaas-internal"], "faas-middleware");
    assert_eq!(
        resp.text().await.unwrap(),
        "Concurrent request limit exceeded. Max concurrent requests: 1"
    );
    // Health does not count toward the limit; readiness reports it.
    assert_eq!(
        client()
            .get(wd.url("/_/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(wd.url("/_/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );

    let slow = slow.await.unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.text().await.unwrap(), "done\n");

    // The slot is released once the first response is done.
    let ready = wd.url("/_/ready");
    eventually("readiness after the slow request", || {
        let ready = ready.clone();
        async move { client().get(ready).send().await.unwrap().status() == 200 }
    })
    .await;
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn health_endpoints_and_lock_file() {
    let wd = start(&[("fprocess", "cat")]).await;
    let resp = client().get(wd.url("/_/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "OK");
    assert!(
        wd.dir.path().join(".lock").exists(),
        "lock file written before serving"
    );
    assert_eq!(
        client()
            .get(wd.url("/_/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .post(wd.url("/_/health"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        client()
            .delete(wd.url("/_/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    let dir = wd.dir.path().to_path_buf();
    wd.stop().await.unwrap();
    assert!(!dir.join(".lock").exists(), "lock file removed at shutdown");
}

#[tokio::test]
async fn suppress_lock_skips_the_file() {
    let wd = start(&[("fprocess", "cat"), ("suppress_lock", "true")]).await;
    assert_eq!(
        client()
            .get(wd.url("/_/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!wd.dir.path().join(".lock").exists());
    wd.stop().await.unwrap();
}

#[tokio::test]
async fn write_timeout_bounds_the_response() {
    let wd = start(&[
        ("mode", "serializing"),
        ("exec_timeout", "0"),
        ("write_timeout", "1s"),
        ("fprocess", "sleep 600"),
    ])
    .await;
    let resp = client().get(wd.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["x-openfaas-internal"], "of-watchdog");
    assert!(resp.text().await.unwrap().contains("write_timeout"));
    wd.stop().await.unwrap();
}
