//! ferry's own binaries run as real child processes, for tests that need to kill one
//! (SIGKILL: no shutdown code runs, exactly like a crashed or OOM-killed process), read what
//! one logged ([`ServiceProcess::start_logged`]) or see how it exits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The path of binary `bin` of workspace package `package`: `$FERRY_BIN_DIR/<bin>` when
/// `FERRY_BIN_DIR` is set (e.g. release builds, for the benchmark), else built once per process
/// with `cargo build` (the test profile's host build, not the static one).
pub fn host_binary(package: &str, bin: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_BIN_DIR") {
        let path = PathBuf::from(dir).join(bin);
        assert!(
            path.is_file(),
            "FERRY_BIN_DIR is set but {} does not exist (build it first)",
            path.display()
        );
        return path;
    }
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{package}/{bin}");
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
    let mut child = Command::new(&cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .args([
            "-p",
            package,
            "--bin",
            bin,
            "--message-format",
            "json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("running cargo to build {bin}: {e}"));
    let mut path = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line.expect("cargo output"))
        else {
            continue;
        };
        if message["reason"] == "compiler-artifact" && message["target"]["name"] == bin {
            path = message["executable"].as_str().map(PathBuf::from);
        }
    }
    assert!(
        child.wait().expect("waiting for cargo").success(),
        "building {bin} failed"
    );
    let path = path.unwrap_or_else(|| panic!("cargo reported no executable for {bin}"));
    built.insert(key, path.clone());
    path
}

/// A ferry binary running as a child process with a given environment; killed on drop.
pub struct ServiceProcess {
    child: Child,
    name: String,
    /// Where its stdout and stderr go, when they are captured.
    log: Option<tempfile::NamedTempFile>,
}

impl ServiceProcess {
    /// Starts `bin` of `package` with exactly `env` (plus `PATH` and `RUST_LOG`); its output
    /// goes to the test's.
    pub fn start(package: &str, bin: &str, env: &[(&str, String)]) -> ServiceProcess {
        ServiceProcess::spawn(package, bin, env, None)
    }

    /// [`start_logged`](Self::start_logged) off the async runtime's threads (building the
    /// binary may take a while), with `DOCKER_HOST` passed on and `RUST_LOG=log_level`.
    pub async fn start_logged_async(
        package: &'static str,
        bin: &'static str,
        mut env: Vec<(&'static str, String)>,
        log_level: &str,
    ) -> ServiceProcess {
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            env.push(("DOCKER_HOST", host));
        }
        env.push(("RUST_LOG", log_level.to_string()));
        tokio::task::spawn_blocking(move || ServiceProcess::start_logged(package, bin, &env))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// [`start`](Self::start), with stdout and stderr captured in a temporary file that
    /// [`log`](Self::log) reads.
    pub fn start_logged(package: &str, bin: &str, env: &[(&str, String)]) -> ServiceProcess {
        let log = tempfile::Builder::new()
            .prefix(&format!("ferry-{bin}-"))
            .suffix(".log")
            .tempfile()
            .expect("creating a log file");
        ServiceProcess::spawn(package, bin, env, Some(log))
    }

    fn spawn(
        package: &str,
        bin: &str,
        env: &[(&str, String)],
        log: Option<tempfile::NamedTempFile>,
    ) -> ServiceProcess {
        let path = host_binary(package, bin);
        let mut command = Command::new(&path);
        command.env_clear();
        for key in ["PATH", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(key) {
                command.env(key, v);
            }
        }
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(file) = &log {
            // Append mode: both streams write at the end, neither overwrites the other.
            let open = || {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(file.path())
                    .expect("opening the log file")
            };
            command
                .stdout(Stdio::from(open()))
                .stderr(Stdio::from(open()));
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        ServiceProcess {
            child,
            name: bin.to_string(),
            log,
        }
    }

    /// A process started by the caller (another program than ferry's, e.g. haproxy in the
    /// bench), named `name` in messages; killed on drop like the others.
    pub fn adopt(name: &str, child: Child) -> ServiceProcess {
        ServiceProcess {
            child,
            name: name.to_string(),
            log: None,
        }
    }

    /// Everything it wrote to stdout and stderr so far ([`start_logged`](Self::start_logged)
    /// only; panics otherwise).
    pub fn log(&self) -> String {
        let file = self.log.as_ref().expect("started without start_logged");
        std::fs::read_to_string(file.path()).expect("reading the log file")
    }

    /// Its exit status once it has exited, waiting up to `timeout`; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {} failed", self.name);
        self.child.wait().expect("waiting for the process")
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
