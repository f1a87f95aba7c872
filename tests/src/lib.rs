//! End-to-end test harness for ferry.
//!
//! ferry's end-to-end tests run against the real things: a `nats-server` child process with
//! JetStream, the local Docker engine, and function images built on this machine from the
//! workspace's own statically linked `watchdog` and `echo-server` binaries. Nothing is pulled
//! from a registry and nothing is skipped: when `nats-server` or the Docker engine is missing, a
//! test fails with a message that says how to get it.
//!
//! # Layout
//!
//! - [`nats`]: [`NatsServer`], a guard around a `nats-server -js` child process on a free
//!   loopback port with a temporary store folder; it can be stopped, killed and restarted on the
//!   same port and store, and is killed (and its folder removed) on drop.
//! - [`docker`]: [`docker()`] connects to the engine; [`DockerGuard`] gives a test a unique id,
//!   labels everything the test creates with it, and removes all of it on drop, pass or fail.
//!   Leftovers of killed test runs are swept once per process.
//! - [`images`]: [`static_binaries()`] builds the static binaries once per process;
//!   [`ImageSpec`] turns them plus `/bin/busybox` into a one-layer function image (the
//!   equivalent of `FROM scratch` + `COPY`, imported from an in-memory tar in well under a
//!   second); [`FunctionImage`] has ready-made images (`echo_http`, `cat_streaming`,
//!   `shell_serializing`), and `build-function-images` makes them under stable names.
//! - [`cli`]: the `ferry` CLI run as a child process ([`cli::Ferry`]) and golden JSON files.
//! - [`callback`]: [`callback::CallbackReceiver`], an HTTP server standing in for an
//!   `X-Callback-Url`, recording what it receives.
//! - [`process`]: ferry binaries as real child processes ([`process::ServiceProcess`]), for
//!   tests that kill one with SIGKILL, read what one logged, or check how one exits.
//!   `FERRY_BIN_DIR` (unset by default) names a folder of ready-built binaries to run instead
//!   of building them with `cargo build` (the benchmark points it at release builds).
//! - [`prometheus`]: [`prometheus::Samples`] parses `/metrics` text for value assertions;
//!   [`prometheus::check_metrics`] runs `promtool check metrics` on it (fetching promtool into
//!   `target/tools/` with `deploy/promtool.sh` if `FERRY_PROMTOOL` does not name one).
//! - [`compose`]: [`compose::Stack`], ferry's compose stack started with `make up` under
//!   the test's own names, ports and labels, and taken down (volumes and images too) on drop.
//! - [`provider`]: [`provider::TestProvider`], `provider-docker` run in-process on a free
//!   port, scoped to a test's id, plus helpers to list its containers and ready addresses.
//! - [`provider_suite`]: the provider API checks both backends run (deploy, scale, scale to
//!   zero and back, update, delete), reaching replicas directly or through a helper container.
//! - [`swarm`]: [`swarm::SwarmSession`] (a swarm for the test, left again if the test made
//!   it) and provider-swarm run in-process.
//! - [`raw_http`]: requests written byte for byte (paths with `..` or `//`, header names in
//!   any case, duplicated headers) and their answers.
//! - this file: [`free_port`], [`wait_until`] for "eventually" assertions, and [`http_client`].
//!
//! # Labels
//!
//! Every harness-created Docker object carries `com.ferry.test=<id>` ([`TEST_LABEL`]); a provider
//! instance started by a test labels what it creates with `com.ferry.instance=<id>`
//! ([`INSTANCE_LABEL`]). Ids look like `ferry-test-<pid>-<counter>-<random>`, so the sweeper can
//! tell which ones belong to a test process that no longer exists.
//!
//! Traffic only goes to loopback and to containers on networks the test created.

pub mod auth;
pub mod callback;
pub mod cli;
pub mod compose;
pub mod docker;
pub mod gateway;
pub mod images;
pub mod nats;
pub mod nats_cluster;
pub mod platform;
pub mod process;
pub mod prometheus;
pub mod provider;
pub mod provider_suite;
pub mod raw_http;
pub mod swarm;
pub mod worker;

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use docker::{
    ContainerSpec, DockerGuard, INSTANCE_LABEL, RunningContainer, TEST_LABEL, docker, leftovers,
    new_test_id, sweep_stale,
};
pub use images::{FunctionImage, ImageFile, ImageSpec, build_named, static_binaries};
pub use nats::NatsServer;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is not reserved: another process could take it before the caller binds it. Within
/// this process the same port is never handed out twice, so parallel tests do not collide.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a free port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Polls `check` every 100 ms until it returns `true`; panics naming `what` after `timeout`.
///
/// For "eventually" assertions: `wait_until("replica is ready", secs(10), || async { .. })`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if let Err(e) = try_wait_until(what, timeout, check).await {
        panic!("{e}");
    }
}

/// [`wait_until`] that returns the time-out as an error rather than panicking (the bench's).
pub async fn try_wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What [`try_wait_until`] waited for in vain.
#[derive(Debug)]
pub struct TimedOut {
    what: String,
    timeout: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (timeout, what) = (self.timeout, &self.what);
        write!(f, "timed out after {timeout:?} waiting until {what}")
    }
}

impl std::error::Error for TimedOut {}

/// Whether `url` answers a GET with 200.
pub async fn answers_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// An HTTP client for talking to services under test: plain HTTP, no proxy from the
/// environment, 5 s to connect, 60 s per request.
pub fn http_client() -> reqwest::Client {
    ferry_runtime::tls::install();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building the test HTTP client")
}
