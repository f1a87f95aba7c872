//! The real `watchdog` binary: flags, exit codes, SIGTERM.

use std::time::Duration;

use tokio::process::Command;

use crate::common::{binary as watchdog, client, eventually, spawn_binary, wait_for_file};

async fn healthcheck(tmp: &std::path::Path) -> bool {
    watchdog(tmp, &[])
        .arg("--run-healthcheck")
        .status()
        .await
        .unwrap()
        .success()
}

#[tokio::test]
async fn version_and_configuration_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = watchdog(tmp.path(), &[])
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = watchdog(tmp.path(), &[]).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "missing fprocess is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fprocess"));

    let out = watchdog(tmp.path(), &[("fprocess", "cat"), ("mode", "batch")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mode") && stderr.contains("http, streaming, serializing"),
        "{stderr}"
    );

    assert!(!healthcheck(tmp.path()).await, "no lock file, unhealthy");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started").display().to_string();
    let fprocess = format!("sh -c 'touch {started}; sleep 5; echo done'");
    let (mut child, addr, _logs) = spawn_binary(
        tmp.path(),
        &[
            ("mode", "serializing"),
            ("fprocess", &fprocess),
            ("healthcheck_interval", "4s"),
            ("write_timeout", "60s"),
        ],
    )
    .await;
    let health = format!("http://{addr}/_/health");
    assert_eq!(client().get(&health).send().await.unwrap().status(), 200);
    assert!(healthcheck(tmp.path()).await, "lock file written");

    let url = format!("http://{addr}/slow");
    let slow = tokio::spawn(async move { client().get(url).send().await.unwrap() });
    wait_for_file(&started).await;

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );

    eventually("health to turn 503", || {
        let health = health.clone();
        async move {
            match client().get(health).send().await {
                Ok(resp) => resp.status() == 503,
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(!healthcheck(tmp.path()).await, "lock file removed");

    let slow = slow.await.unwrap();
    assert_eq!(slow.status(), 200, "the in-flight request completes");
    assert_eq!(slow.text().await.unwrap(), "done\n");

    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
