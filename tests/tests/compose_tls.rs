//! `make up TLS=1`: the compose stack with HTTPS on the gateway. The gateway writes a
//! self-signed certificate on its first start; `make credentials` prints its SHA-256
//! fingerprint, which is the certificate the published port presents (over HTTP/2, to a
//! client trusting only that certificate); plain HTTP gets no answer; basic auth still
//! guards `/system/*`; every service is healthy (the gateway's health check speaks TLS);
//! Prometheus scrapes the gateway over HTTPS; `make login` writes an `https://` entry.
//!
//! A test binary of its own, apart from `compose.rs`: both run `make up`, which stages the
//! images' build contexts in one shared folder, so they must not run at the same time.
//! The stack is isolated and removed as in `compose.rs` ([`Stack`]).

use std::time::Duration;

use ferry_tests::compose::{Stack, assert_prometheus_targets, credentials, wait_healthy};
use ferry_tests::{DockerGuard, http_client};
use reqwest::tls::TlsInfo;
use reqwest::{Certificate, Client, Version};
use ring::digest::{SHA256, digest};
use serde_json::Value;

/// A client trusting only `pem`, reporting the server's certificate.
fn client_trusting(pem: &str) -> Client {
    ferry_runtime::tls::install();
    let cert = Certificate::from_pem(pem.as_bytes()).expect("the gateway's certificate as PEM");
    Client::builder()
        .no_proxy()
        .tls_certs_only([cert])
        .tls_info(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building a TLS client")
}

/// The fingerprint of a DER certificate as `make credentials` prints it.
fn fingerprint(der: &[u8]) -> String {
    digest(&SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_up_tls_serves_the_gateway_over_https_with_a_self_signed_certificate() {
    let guard = DockerGuard::new().await;
    let mut stack = Stack::new(&guard);
    stack.set("FERRY_TLS", "1");
    stack.make("up").await;
    wait_healthy(&guard, &stack).await;
    let https = |path: &str| stack.gateway(path).replacen("http://", "https://", 1);

    let printed = stack.make("credentials").await;
    let shown = printed
        .lines()
        .find_map(|l| l.strip_prefix("tls:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no fingerprint in make credentials' output:\n{printed}"))
        .to_owned();
    let url = stack.run("deploy/credentials.sh", &["--url"]).await;
    assert_eq!(url.trim(), https(""));
    let pem = stack.run("deploy/credentials.sh", &["--cert"]).await;

    // The published port presents that certificate, over HTTP/2, to a client trusting it.
    let client = client_trusting(&pem);
    let health = client
        .get(https("/healthz"))
        .send()
        .await
        .expect("GET /healthz over HTTPS");
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), Version::HTTP_2);
    let presented = health
        .extensions()
        .get::<TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("the peer certificate");
    assert_eq!(fingerprint(presented), shown);
    let plain = http_client().get(stack.gateway("/healthz")).send().await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // Basic auth over HTTPS.
    let auth = credentials(&stack).await;
    let functions = https("/system/functions");
    let refused = client
        .get(&functions)
        .send()
        .await
        .expect("GET unauthenticated");
    assert_eq!(refused.status(), 401);
    let listed = client
        .get(&functions)
        .basic_auth(&auth.user, Some(&auth.password))
        .send()
        .await
        .expect("GET with the credentials");
    assert_eq!(listed.status(), 200);

    // Prometheus scrapes the gateway over HTTPS, checking its certificate.
    assert_prometheus_targets(&stack).await;
    let targets: Value = http_client()
        .get(stack.prometheus("/api/v1/targets"))
        .send()
        .await
        .expect("Prometheus targets")
        .json()
        .await
        .expect("targets JSON");
    let gateway = targets["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["labels"]["job"] == "gateway")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        gateway["scrapeUrl"], "https://gateway:8080/metrics",
        "{gateway}"
    );

    // faas-cli's entry is for the https:// URL.
    stack.make("login").await;
    let config = std::fs::read_to_string(stack.openfaas_config.path().join("config.yml"))
        .expect("faas-cli's config file");
    assert!(
        config.contains(&format!("- gateway: {}\n", https(""))),
        "{config}"
    );
}
