//! Health and readiness: the in-memory "accepting" flag, the `/tmp/.lock` file that mirrors
//! it for exec probes (`watchdog --run-healthcheck`) and decides health in classic mode, and
//! the `/_/health` and `/_/ready` handlers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};

use crate::body::{Body, empty, full};
use crate::config::Mode;
use crate::server::State;

/// Whether the watchdog accepts work, and the lock file that says so to exec probes.
#[derive(Debug)]
pub(crate) struct Health {
    accepting: AtomicBool,
    lock: Option<PathBuf>,
}

impl Health {
    /// Not accepting yet; `lock` is `None` with `suppress_lock`.
    pub(crate) fn new(lock: Option<PathBuf>) -> Self {
        Health {
            accepting: AtomicBool::new(false),
            lock,
        }
    }

    /// Writes the lock file (creating its directory) and starts reporting healthy. A lock
    /// file that cannot be written (read-only file system) is logged, not fatal: outside
    /// classic mode health is decided by the flag, the file only serves `--run-healthcheck`.
    pub(crate) fn mark_accepting(&self) {
        if let Some(path) = &self.lock {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(path, b""));
            match written {
                Ok(()) => tracing::debug!(path = %path.display(), "wrote the lock file"),
                Err(error) => tracing::warn!(
                    path = %path.display(), %error,
                    "cannot write the lock file; `--run-healthcheck` (and /_/health in \
                     classic mode) will report unhealthy; suppress_lock=true does without it"
                ),
            }
        }
        self.accepting.store(true, Ordering::SeqCst);
    }

    /// Starts reporting unhealthy and removes the lock file.
    pub(crate) fn mark_stopping(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        if let Some(path) = &self.lock {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove the lock file")
                }
            }
        }
    }

    /// True between start-up and the beginning of shutdown.
    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// True when the lock file exists, or there is none to look for (`suppress_lock`).
    pub(crate) fn lock_present(&self) -> bool {
        self.lock.as_ref().is_none_or(|path| path.exists())
    }
}

/// `GET /_/health`: 200 `OK` while accepting work and the function can be reached, else 503;
/// other methods 405. "Reached" means: in http mode, the upstream accepts TCP connections
/// (so health never runs ahead of the function's server); in classic mode, the lock file
/// exists (unless `suppress_lock`), as the classic watchdog decides it; the other fork modes
/// fork per request, so there is nothing to wait for.
pub(crate) async fn health(state: &State, method: &Method) -> Response<Body> {
    if let Some(refused) = refuse(state, method) {
        return refused;
    }
    if state.config.mode == Mode::Classic && !state.health.lock_present() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the lock file is missing");
    }
    if !state.runner.ready().await {
        return upstream_down();
    }
    plain(StatusCode::OK, "OK")
}

/// `GET /_/ready` (not served in classic mode): 405 and 503 as health, then 429 when
/// `max_inflight` is reached, 503 while the http-mode upstream does not accept connections,
/// then (with `ready_path`) whatever the function answers at that path.
pub(crate) async fn ready(state: &State, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    if let Some(refused) = refuse(state, req.method()) {
        return refused;
    }
    if state.at_capacity() {
        return plain(StatusCode::TOO_MANY_REQUESTS, "max_inflight reached");
    }
    if !state.runner.ready().await {
        return upstream_down();
    }
    let Some(path) = &state.config.ready_path else {
        return plain(StatusCode::OK, "OK");
    };
    let (mut parts, _) = req.into_parts();
    parts.uri = path.parse().expect("validated by Config");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    let timeout = state.config.exec_timeout;
    match state
        .runner
        .invoke(Request::from_parts(parts, empty()), timeout)
        .await
    {
        Ok(resp) => resp,
        Err(error) => {
            tracing::info!(%error, path, "readiness check at ready_path failed");
            error.into_response(started.elapsed())
        }
    }
}

/// What both endpoints answer before looking at the function: 405 for methods other than
/// GET, 503 once shutdown began.
fn refuse(state: &State, method: &Method) -> Option<Response<Body>> {
    if method != Method::GET {
        return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    if !state.health.is_accepting() {
        return Some(plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    None
}

fn upstream_down() -> Response<Body> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "function upstream is not accepting connections",
    )
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(text))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_follows_the_flag_and_failures_are_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(".lock");
        let health = Health::new(Some(path.clone()));
        assert!(!health.is_accepting() && !health.lock_present());
        health.mark_accepting();
        assert!(health.is_accepting() && path.exists() && health.lock_present());
        std::fs::remove_file(&path).unwrap();
        assert!(health.is_accepting() && !health.lock_present());
        health.mark_stopping();
        assert!(!health.is_accepting() && !path.exists());
        assert!(
            Health::new(None).lock_present(),
            "suppress_lock: nothing to look for"
        );

        // A path below a regular file cannot be created: still healthy in memory.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let blocked = Health::new(Some(dir.path().join("file/.lock")));
        blocked.mark_accepting();
        assert!(blocked.is_accepting());
    }
}
