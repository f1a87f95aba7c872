//! Issue 14's hardening, end to end with the real binaries:
//!
//! - no secret in logs or error bodies: a gateway and a queue-worker whose `nats_url` and
//!   `functions_provider_url` carry credentials, with a callback URL carrying user-info and a
//!   `?token=`, log nothing of them and answer nothing of them (`/healthz` `503`s, `503`s of
//!   NATS being down, `502`s of the provider being down, a rejected callback URL), while
//!   the credentials in `nats_url` do authenticate against a NATS server that requires them;
//! - safe listen defaults: without `basic_auth` a service listens on loopback only, and a
//!   provider (or gateway) told to `bind=0.0.0.0` without it refuses to start.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_tests::process::ServiceProcess;
use ferry_tests::worker::{FakeGateway, Reply};
use ferry_tests::{DockerGuard, NatsServer, free_port, http_client, wait_until};

const NATS_USER: &str = "ferry";
const NATS_PASSWORD: &str = "NatsPassw0rd4f1e";
const PROVIDER_PASSWORD: &str = "ProviderPassw0rd9c2b";
const CALLBACK_PASSWORD: &str = "CallbackPassw0rd7d3a";
const CALLBACK_TOKEN: &str = "SECRET123";
const SECRETS: [&str; 4] = [
    NATS_PASSWORD,
    PROVIDER_PASSWORD,
    CALLBACK_PASSWORD,
    CALLBACK_TOKEN,
];

/// Everything logged, third-party crates included.
const LOG_LEVEL: &str = "debug";

/// Starts `bin` of `package` with `env`, its output captured.
async fn start_logged(
    package: &'static str,
    bin: &'static str,
    env: Vec<(&'static str, String)>,
) -> ServiceProcess {
    ServiceProcess::start_logged_async(package, bin, env, LOG_LEVEL).await
}

/// `GET`/`POST` `url`: status and body (status 0 when nothing answers).
async fn fetch(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http_client().request(method, url).body("payload");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// Polls `GET url` until it answers `status`; returns the body.
async fn wait_status(url: &str, status: u16) -> String {
    let what = format!("GET {url} answers {status}");
    wait_until(&what, Duration::from_secs(30), || async {
        fetch("GET", url, &[]).await.0 == status
    })
    .await;
    fetch("GET", url, &[]).await.1
}

/// `http://<user>:<password>@<rest of url>`.
fn with_user_info(url: &str, user: &str, password: &str) -> String {
    url.replacen("http://", &format!("http://{user}:{password}@"), 1)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}:\n{text}"
        );
    }
}

/// The fake provider and function replica; its `/cb` is the callback receiver, failing the
/// first callback so that it is logged as not delivered and retried. Once `slow` is set, it
/// answers everything after 3 s: past the gateway's `provider_timeout`.
async fn fake_provider(slow: Arc<AtomicBool>) -> FakeGateway {
    let callbacks = Arc::new(AtomicUsize::new(0));
    FakeGateway::start_with(move |call, _| {
        if slow.load(Ordering::SeqCst) {
            return Reply::ok("late").delay(Duration::from_secs(3));
        }
        if !call.path.starts_with("/cb") {
            return Reply::ok("done");
        }
        match callbacks.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::ok("not yet").status(500),
            _ => Reply::ok(""),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_service_logs_or_error_bodies() {
    let args = ["--user", NATS_USER, "--pass", NATS_PASSWORD];
    let mut nats = tokio::task::spawn_blocking(move || NatsServer::start_with(&args))
        .await
        .expect("starting nats-server");
    let nats_url = format!(
        "nats://{NATS_USER}:{NATS_PASSWORD}@127.0.0.1:{}",
        nats.port()
    );
    let slow = Arc::new(AtomicBool::new(false));
    let fake = fake_provider(slow.clone()).await;
    let fake_port = fake.url().rsplit(':').next().expect("a port").to_string();
    let provider_url = with_user_info(fake.url(), "provider", PROVIDER_PASSWORD);
    let (gateway_port, worker_port) = (free_port(), free_port());
    let gateway = start_logged(
        "ferry-gateway",
        "gateway",
        vec![
            ("port", gateway_port.to_string()),
            ("nats_url", nats_url.clone()),
            ("functions_provider_url", provider_url.clone()),
            ("provider_timeout", "1s".to_string()),
        ],
    )
    .await;
    let worker = start_logged(
        "ferry-queue-worker",
        "queue-worker",
        vec![
            ("port", worker_port.to_string()),
            ("nats_url", nats_url),
            ("functions_provider_url", provider_url),
            ("pull_expires", "1s".to_string()),
            ("callback_initial_wait", "200ms".to_string()),
            ("callback_max_wait", "1s".to_string()),
        ],
    )
    .await;
    let gateway_url = |path: &str| format!("http://127.0.0.1:{gateway_port}{path}");
    let worker_health = format!("http://127.0.0.1:{worker_port}/healthz");
    // Healthy means connected: the credentials in nats_url authenticate.
    wait_status(&gateway_url("/healthz"), 200).await;
    wait_status(&worker_health, 200).await;

    let mut bodies = submit_and_settle(&fake, &gateway_url("")).await;
    bodies.extend(error_bodies(&mut nats, &slow, &gateway_url(""), &worker_health).await);
    let logs = [("gateway", gateway), ("queue-worker", worker)].map(|(name, mut process)| {
        process.terminate();
        (name, process.log())
    });

    for (what, body) in &bodies {
        assert_no_secret(what, body);
    }
    for (name, log) in &logs {
        assert_no_secret(&format!("the {name}'s log"), log);
    }
    // The URLs are still there, without what they hid (the provider's user-info is not even
    // kept: the provider gets the credentials of secret_mount_path).
    let (gateway_log, worker_log) = (&logs[0].1, &logs[1].1);
    let nats_shown = format!("nats://***@127.0.0.1:{}", nats.port());
    let provider_shown = format!("provider=http://127.0.0.1:{}", fake_port);
    for (name, log, shown) in [
        ("gateway", gateway_log, &nats_shown),
        ("gateway", gateway_log, &provider_shown),
        ("queue-worker", worker_log, &provider_shown),
    ] {
        assert!(
            log.contains(shown.as_str()),
            "{name} log without {shown}:\n{log}"
        );
    }
    let callback_shown = format!("callback=http://***@127.0.0.1:{fake_port}/cb ");
    assert!(
        worker_log.contains("callback not delivered") && worker_log.contains(&callback_shown),
        "worker log without {callback_shown}:\n{worker_log}"
    );
}

/// Submits a call with a callback URL full of secrets, waits until its callback is delivered
/// (the second time), and checks the owner's view keeps the URL. Also submits an unusable
/// callback URL. Returns the bodies that must not show secrets.
async fn submit_and_settle(fake: &FakeGateway, gateway: &str) -> Vec<(String, String)> {
    let callback = with_user_info(
        &fake.url_for(&format!("/cb?token={CALLBACK_TOKEN}#frag")),
        "hook",
        CALLBACK_PASSWORD,
    );
    let response = http_client()
        .post(format!("{gateway}/async-function/echo"))
        .header("X-Callback-Url", &callback)
        .body("payload")
        .send()
        .await
        .expect("submitting a call");
    assert_eq!(response.status(), 202, "async submission");
    let call_id = response.headers()["x-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let status_url = format!("{gateway}/system/async-calls/{call_id}");
    wait_until(
        "the callback is delivered",
        Duration::from_secs(30),
        || async {
            let (_, body) = fetch("GET", &status_url, &[]).await;
            body.contains("\"delivered\"")
        },
    )
    .await;
    // The status record is the submitter's own view (behind /system/* auth): it keeps the
    // callback URL as given.
    let (_, record) = fetch("GET", &status_url, &[]).await;
    assert!(record.contains(CALLBACK_TOKEN), "status record: {record}");

    let bad = format!("ftp://hook:{CALLBACK_PASSWORD}@127.0.0.1/cb?token={CALLBACK_TOKEN}");
    let rejected = fetch(
        "POST",
        &format!("{gateway}/async-function/echo"),
        &[("X-Callback-Url", bad.as_str())],
    )
    .await;
    assert_eq!(rejected.0, 400, "an ftp callback: {}", rejected.1);
    vec![(
        "the 400 of an unusable callback URL".to_string(),
        rejected.1,
    )]
}

/// Stops NATS, then makes the provider too slow, collecting what the services answer
/// meanwhile.
async fn error_bodies(
    nats: &mut NatsServer,
    slow: &AtomicBool,
    gateway: &str,
    worker_health: &str,
) -> Vec<(String, String)> {
    let mut bodies = Vec::new();
    nats.stop();
    let body = wait_status(&format!("{gateway}/healthz"), 503).await;
    assert!(body.contains("***@127.0.0.1"), "gateway /healthz: {body}");
    bodies.push(("the gateway's /healthz without NATS".to_string(), body));
    let body = wait_status(worker_health, 503).await;
    bodies.push(("the worker's /healthz without NATS".to_string(), body));
    for (method, path) in [
        ("POST", "/async-function/echo"),
        ("GET", "/system/async-calls/x"),
        ("GET", "/system/dead-letters"),
    ] {
        let (status, body) = fetch(method, &format!("{gateway}{path}"), &[]).await;
        assert!(
            status >= 500,
            "{method} {path} without NATS: {status} {body}"
        );
        bodies.push((format!("{method} {path} without NATS"), body));
    }
    slow.store(true, Ordering::SeqCst);
    wait_until(
        "the gateway reports the provider down",
        Duration::from_secs(10),
        || async {
            fetch("GET", &format!("{gateway}/healthz"), &[])
                .await
                .1
                .contains("provider: ")
        },
    )
    .await;
    let (status, body) = fetch("GET", &format!("{gateway}/healthz"), &[]).await;
    assert!(
        status == 503 && body.contains("provider: http://127.0.0.1:"),
        "the gateway's /healthz with the provider too slow: {status} {body}"
    );
    bodies.push((
        "the gateway's /healthz with the provider too slow".into(),
        body,
    ));
    bodies
}

/// The address this host's default route leaves from, if it has one (no packet is sent).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("203.0.113.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn accepts(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
}

fn exit_of(process: &mut ServiceProcess, what: &str) -> ExitStatus {
    process
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{what} still runs; its log:\n{}", process.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_bind_without_auth_is_refused_at_start_up() {
    let data = tempfile::tempdir().expect("a data folder");
    let data_dir = data.path().to_str().expect("utf-8").to_string();
    for (package, bin) in [
        ("ferry-provider-docker", "provider-docker"),
        ("ferry-gateway", "gateway"),
    ] {
        let env = vec![
            ("port", free_port().to_string()),
            ("bind", "0.0.0.0".to_string()),
            ("data_dir", data_dir.clone()),
        ];
        let mut process = start_logged(package, bin, env).await;
        let status = exit_of(&mut process, bin);
        let log = process.log();
        assert_eq!(
            status.code(),
            Some(64),
            "{bin} exit status; its log:\n{log}"
        );
        assert!(
            log.contains("bind=\"0.0.0.0\"") && log.contains("allow_unauthenticated=true"),
            "{bin}'s message: {log}"
        );
    }
}

/// A provider-docker process with `extra`, scoped to `guard`, answering `/healthz` on
/// 127.0.0.1:`port`.
async fn start_provider(
    guard: &DockerGuard,
    port: u16,
    data_dir: &str,
    extra: &[(&'static str, &str)],
) -> ServiceProcess {
    let mut env = vec![
        ("port", port.to_string()),
        ("instance", guard.id().to_string()),
        ("functions_network", format!("{}-fn", guard.id())),
        ("data_dir", data_dir.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let process = start_logged("ferry-provider-docker", "provider-docker", env).await;
    wait_status(&format!("http://127.0.0.1:{port}/healthz"), 200).await;
    process
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_the_provider_listens_on_loopback_only() {
    let guard = DockerGuard::new().await;
    let data = tempfile::tempdir().expect("a data folder");
    let data_dir = data.path().to_str().expect("utf-8");
    let port = free_port();
    let mut provider = start_provider(&guard, port, data_dir, &[]).await;
    let log = provider.log();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "the provider logs where it listens: {log}"
    );
    let Some(ip) = non_loopback_address() else {
        // No other interface to try: the logged address is all there is to check.
        return;
    };
    assert!(
        !accepts(SocketAddr::new(ip, port)),
        "the provider without basic_auth answers on {ip}:{port}"
    );
    provider.terminate();

    // The same host address reaches a provider told to listen everywhere (and allowed to):
    // the check above is not vacuous.
    let port = free_port();
    let extra = [("bind", "0.0.0.0"), ("allow_unauthenticated", "true")];
    let mut open = start_provider(&guard, port, data_dir, &extra).await;
    assert!(
        accepts(SocketAddr::new(ip, port)),
        "bind=0.0.0.0 is not reachable on {ip}:{port}; log:\n{}",
        open.log()
    );
    open.terminate();
}
