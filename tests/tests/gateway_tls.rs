//! TLS on the gateway, against the real `gateway` binary: with `tls_cert_file` and
//! `tls_key_file` (a server certificate from a CA made here with rcgen) its port serves
//! HTTPS only, HTTP/2 and HTTP/1.1 by ALPN, and no plain HTTP; `gateway --healthcheck`
//! speaks TLS; replacing the two files makes new connections get the new certificate while
//! an open connection keeps working with the old one; a broken replacement is logged
//! (without quoting the key) and the current certificate kept; a certificate without its
//! key is refused at start-up, naming the setting.
//!
//! The gateway runs in front of a real NATS server and a stand-in provider (a
//! [`CallbackReceiver`], which answers `200` to everything, `/healthz` included), so that its
//! `/healthz` is `200`. Nothing here touches Docker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_tests::callback::CallbackReceiver;
use ferry_tests::process::{ServiceProcess, host_binary};
use ferry_tests::{NatsServer, free_port, http_client, wait_until};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use reqwest::tls::TlsInfo;
use reqwest::{Certificate, Client, Version};

const MINUTE: Duration = Duration::from_secs(60);

/// A certificate authority made for the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost` named `cn`.
    fn server(&self, cn: &str) -> ServerPair {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A server certificate and its key.
struct ServerPair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// Where the gateway reads its certificate and key.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    /// Replaces both files, each by a rename (as a certificate manager would), key first.
    fn install(&self, pair: &ServerPair) {
        replace(&self.key, &pair.key_pem);
        replace(&self.cert, &pair.cert_pem);
    }
}

fn replace(path: &Path, content: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, content).expect("writing a replacement");
    std::fs::rename(&temp, path).expect("renaming a replacement into place");
}

/// A client trusting only `cas`, reporting the server's certificate; HTTP/1.1 only or
/// HTTP/2 when the server offers it. Each client has its own connection pool.
fn client(cas: &[&Ca], http1_only: bool) -> Client {
    ferry_runtime::tls::install();
    let roots = cas
        .iter()
        .map(|ca| Certificate::from_pem(ca.pem.as_bytes()).expect("CA as a reqwest root"));
    let builder = Client::builder()
        .no_proxy()
        .tls_certs_only(roots)
        .tls_info(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().expect("building a TLS client")
}

/// `GET url`: the status, the HTTP version and the DER certificate the server presented.
async fn get(client: &Client, url: &str) -> reqwest::Result<(u16, Version, Vec<u8>)> {
    let resp = client.get(url).send().await?;
    let cert = resp
        .extensions()
        .get::<TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    Ok((resp.status().as_u16(), resp.version(), cert))
}

/// The environment of a gateway on `port` serving `files`, in front of `nats` and
/// `provider`.
fn gateway_env(
    port: u16,
    files: &Files,
    nats: &str,
    provider: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("port", port.to_string()),
        ("nats_url", nats.to_string()),
        ("functions_provider_url", provider.to_string()),
        ("tls_cert_file", files.cert.display().to_string()),
        ("tls_key_file", files.key.display().to_string()),
        ("tls_reload_interval", "200ms".to_string()),
        // Longer than the test: the HTTP/2 connection kept open must not be closed as idle.
        ("read_header_timeout", "5m".to_string()),
    ]
}

/// `gateway --healthcheck` with `env`: whether it exited 0, and what it printed.
async fn healthcheck(env: Vec<(&'static str, String)>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(host_binary("ferry-gateway", "gateway"))
            .arg("--healthcheck")
            .env_clear()
            .envs(env)
            .output()
            .expect("running gateway --healthcheck");
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), text)
    })
    .await
    .expect("healthcheck task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_https_http2_and_http1_and_reloads_its_certificate() {
    let nats = NatsServer::start_async().await;
    let provider = CallbackReceiver::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let files = Files {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let (ca_one, ca_two) = (Ca::new("ferry test CA one"), Ca::new("ferry test CA two"));
    let (first, second) = (ca_one.server("gateway one"), ca_two.server("gateway two"));
    files.install(&first);
    let port = free_port();
    let env = gateway_env(port, &files, &nats.url(), &provider.url(""));
    let started_env = env.clone();
    let gateway = tokio::task::spawn_blocking(move || {
        ServiceProcess::start_logged("ferry-gateway", "gateway", &started_env)
    })
    .await
    .expect("starting the gateway");
    let url = format!("https://127.0.0.1:{port}/healthz");

    // HTTP/2 by ALPN, with the configured certificate; /healthz is 200 (NATS and provider up).
    let h2 = client(&[&ca_one], false);
    wait_until("the gateway answers 200 over HTTPS", MINUTE, || async {
        matches!(get(&h2, &url).await, Ok((200, _, _)))
    })
    .await;
    let (_, version, cert) = get(&h2, &url).await.expect("GET over HTTP/2");
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(cert, first.der, "the configured certificate");
    // HTTP/1.1 for a client that offers only that.
    let (status, version, _) = get(&client(&[&ca_one], true), &url)
        .await
        .expect("GET over HTTP/1.1");
    assert_eq!((status, version), (200, Version::HTTP_11));
    // No plain HTTP on the port.
    let plain = http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // The health check speaks TLS.
    let (healthy, said) = healthcheck(env.clone()).await;
    assert!(healthy, "gateway --healthcheck failed: {said}");

    // New files: new connections get the new certificate...
    files.install(&second);
    wait_until(
        "a new connection presents the new certificate",
        MINUTE,
        || async {
            let fresh = client(&[&ca_one, &ca_two], false);
            matches!(get(&fresh, &url).await, Ok((200, _, cert)) if cert == second.der)
        },
    )
    .await;
    assert!(
        get(&client(&[&ca_one], false), &url).await.is_err(),
        "the old CA alone no longer verifies new connections"
    );
    // ...while the connection opened before keeps working, with the certificate it had.
    let (status, version, cert) = get(&h2, &url).await.expect("GET on the open connection");
    assert_eq!((status, version), (200, Version::HTTP_2));
    assert_eq!(cert, first.der, "the open connection kept its certificate");

    // A broken replacement (a key that is not the certificate's) is refused: still the second.
    replace(&files.key, &first.key_pem);
    wait_until("the gateway logs the refused pair", MINUTE, || async {
        gateway.log().contains("TLS certificate not reloaded")
    })
    .await;
    let (status, _, cert) = get(&client(&[&ca_two], false), &url)
        .await
        .expect("GET after a broken replacement");
    assert_eq!(status, 200);
    assert_eq!(cert, second.der, "the previous certificate is kept");
    let log = gateway.log();
    let key_line = first.key_pem.lines().nth(1).expect("a PEM body line");
    assert!(
        !log.contains(key_line) && !log.contains("PRIVATE KEY-----"),
        "the key is not logged:\n{log}"
    );
    assert!(log.contains("does not go with tls_cert_file"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_its_key_stops_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let cert = dir.path().join("tls.crt");
    std::fs::write(&cert, Ca::new("ferry test CA").server("gateway").cert_pem)
        .expect("writing the certificate");
    let env = vec![
        ("port", free_port().to_string()),
        ("nats_url", "nats://127.0.0.1:1".to_string()),
        ("tls_cert_file", cert.display().to_string()),
    ];
    let mut gateway = tokio::task::spawn_blocking(move || {
        ServiceProcess::start_logged("ferry-gateway", "gateway", &env)
    })
    .await
    .expect("starting the gateway");
    let status = gateway.wait_exit(MINUTE).expect("the gateway exited");
    assert_eq!(status.code(), Some(64), "a configuration error");
    let log = gateway.log();
    assert!(
        log.contains("tls_key_file") && log.contains("tls_cert_file="),
        "{log}"
    );
}
