//! Test harness: start a watchdog in-process or as the real binary, an echo upstream, and
//! polling helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_watchdog::{Config, WatchdogError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for anything that should happen "soon"; generous so slow CI never flakes.
pub(crate) const SOON: Duration = Duration::from_secs(20);

/// A watchdog running in this process.
pub(crate) struct Watchdog {
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), WatchdogError>>>,
}

/// Starts a watchdog configured by `pairs` (on top of test defaults: no healthcheck wait,
/// lock file in a temporary directory).
pub(crate) async fn start(pairs: &[(&str, &str)]) -> Watchdog {
    start_inner(pairs, None).await
}

/// [`start`], also serving metrics on a listener of their own; returns its address too.
pub(crate) async fn start_with_metrics(pairs: &[(&str, &str)]) -> (Watchdog, SocketAddr) {
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = metrics.local_addr().unwrap();
    (start_inner(pairs, Some(metrics)).await, addr)
}

async fn start_inner(pairs: &[(&str, &str)], metrics: Option<TcpListener>) -> Watchdog {
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("healthcheck_interval".into(), "0s".into());
    for (k, v) in pairs {
        env.insert(k.to_string(), v.to_string());
    }
    let mut config = Config::from_env(&env).expect("valid test configuration");
    config.lock_path = dir.path().join(".lock");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ferry_watchdog::run_with_metrics(
        config,
        listener,
        metrics,
        async move {
            let _ = stopped.await;
        },
    ));
    Watchdog {
        addr,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A watchdog in `mode` with `max_inflight=1` whose only slot is taken: a request (to
/// `/slow`) runs a function that answers `done` after 2 seconds. Returns once that function
/// has started, with the request's task and the folder it uses.
pub(crate) async fn start_saturated(
    mode: &str,
) -> (Watchdog, JoinHandle<reqwest::Response>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started").display().to_string();
    let fprocess = format!("sh -c 'touch {started}; sleep 2; echo done'");
    let wd = start(&[
        ("mode", mode),
        ("max_inflight", "1"),
        ("fprocess", &fprocess),
    ])
    .await;
    let url = wd.url("/slow");
    let slow = tokio::spawn(async move { client().get(url).send().await.unwrap() });
    wait_for_file(&started).await;
    (wd, slow, dir)
}

impl Watchdog {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers shutdown and returns what `run()` returned.
    pub(crate) async fn stop(mut self) -> Result<(), WatchdogError> {
        let _ = self.stop.take().unwrap().send(());
        self.join().await
    }

    /// Waits for `run()` to return by itself.
    pub(crate) async fn join(&mut self) -> Result<(), WatchdogError> {
        let task = self.task.take().unwrap();
        tokio::time::timeout(SOON, task)
            .await
            .expect("run() returned in time")
            .unwrap()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_watchdog");

/// The `watchdog` binary with a clean environment: `PATH`, a private `TMPDIR` (so its lock
/// file is `tmp/.lock`), `RUST_LOG=info`, and `vars`.
pub(crate) fn binary(tmp: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "info")
        .envs(vars.iter().copied())
        .kill_on_drop(true);
    cmd
}

/// The lines a [`spawn_binary`] watchdog has written to stderr so far.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// How many lines so far contain `text`.
    pub(crate) fn count(&self, text: &str) -> usize {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|line| line.contains(text)).count()
    }

    /// Everything so far, for assertion messages.
    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Starts the [`binary`] on port 0 (metrics off) and returns it with the address it logged
/// and its stderr lines, which keep being collected.
pub(crate) async fn spawn_binary(tmp: &Path, vars: &[(&str, &str)]) -> (Child, String, Logs) {
    let mut child = binary(tmp, vars)
        .env("port", "0")
        .env("metrics_port", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = Logs::default();
    let addr = tokio::time::timeout(SOON, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, addr)) = line.split_once("listening on 0.0.0.0:") {
                return format!("127.0.0.1:{}", addr.trim());
            }
        }
        panic!("watchdog exited before listening");
    })
    .await
    .expect("watchdog logs its address");
    // Keep draining stderr so the child never blocks on a full pipe.
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.0.lock().unwrap().push(line);
        }
    });
    (child, addr, logs)
}

pub(crate) fn client() -> reqwest::Client {
    ferry_runtime::tls::install();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An echo server (the `echo-server` test function) on 127.0.0.1:0.
pub(crate) async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ferry_test_functions::serve(listener, Default::default()));
    addr
}

/// A port nothing listens on (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it is true; panics after [`SOON`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SOON;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `path` exists.
pub(crate) async fn wait_for_file(path: &str) {
    let path = PathBuf::from(path);
    eventually(&format!("{} to exist", path.display()), || {
        let exists = path.exists();
        async move { exists }
    })
    .await;
}

/// Reads a pid written by a test function.
pub(crate) async fn read_pid(path: &str) -> u32 {
    wait_for_file(path).await;
    let mut text = String::new();
    eventually("a pid in the pid file", || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        let ok = text.trim().parse::<u32>().is_ok();
        async move { ok }
    })
    .await;
    text.trim().parse().unwrap()
}

/// True while `pid` is a live (not zombie) process.
pub(crate) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Err(_) => false,
        // Format: `pid (comm) state ...`; comm may contain spaces, so split after `)`.
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim().chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        }
    }
}

/// Waits until `pid` is gone.
pub(crate) async fn wait_until_dead(pid: u32) {
    eventually(&format!("process {pid} to be killed"), || {
        let running = is_running(pid);
        async move { !running }
    })
    .await;
}
