//! The http mode: `fprocess` is started once and serves HTTP at `upstream_url`; every
//! request is reverse-proxied to it over a pooled keep-alive client, bodies streamed both
//! ways (the request body is buffered first only with `http_buffer_req_body`).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use http::header::CONTENT_LENGTH;
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustix::process::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use ferry_runtime::headers::strip_hop_by_hop;

use super::process::{command, forward_lines, signal_group};
use crate::body::{Body, Deadline, boxed, guarded};
use crate::error::WatchdogError;

/// How long readiness waits for a TCP connection to the upstream.
const READY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the child gets between SIGTERM and SIGKILL at shutdown.
pub(crate) const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// Proxies to the long-running function process.
pub(crate) struct HttpRunner {
    client: Client<HttpConnector, Body>,
    /// `scheme://authority[/base]`, no trailing slash.
    base: String,
    /// `host:port` for the readiness probe.
    addr: String,
    buffer_body: bool,
    child: Supervised,
}

impl HttpRunner {
    /// Starts `argv` and prepares the client for `upstream`.
    pub(crate) fn start(
        argv: &[String],
        upstream: &Uri,
        buffer_body: bool,
        prefix_logs: bool,
    ) -> Result<Self, WatchdogError> {
        let child = Supervised::spawn(argv, prefix_logs)?;
        let authority = upstream.authority().expect("validated by Config");
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let base = format!(
            "http://{authority}{}",
            upstream.path().trim_end_matches('/')
        );
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpRunner {
            client,
            base,
            addr,
            buffer_body,
            child,
        })
    }

    /// Proxies `req`; `timeout` bounds the whole exchange, response body included.
    pub(crate) async fn invoke(
        &self,
        req: Request<Body>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, WatchdogError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{}", self.base, path);
        parts.uri = url.parse().map_err(|e| WatchdogError::Upstream {
            url: url.clone(),
            source: Box::new(e),
        })?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        let body = if self.buffer_body {
            let bytes = body
                .collect()
                .await
                .map_err(WatchdogError::RequestBody)?
                .to_bytes();
            parts.headers.insert(CONTENT_LENGTH, bytes.len().into());
            boxed(Full::new(bytes))
        } else {
            body
        };

        let call = self.client.request(Request::from_parts(parts, body));
        let result = match deadline {
            Some(at) => tokio::time::timeout_at(at, call)
                .await
                .map_err(|_| WatchdogError::ExecTimeout(timeout.unwrap_or_default()))?,
            None => call.await,
        };
        let resp = result.map_err(|e| WatchdogError::Upstream {
            url,
            source: Box::new(e),
        })?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let mut body = Deadline::new(boxed(body));
        if let Some(at) = deadline {
            body = body.deadline(at, "exec_timeout while streaming the upstream response");
        }
        Ok(Response::from_parts(parts, guarded(body)))
    }

    /// Whether the upstream accepts TCP connections right now.
    pub(crate) async fn upstream_accepting(&self) -> bool {
        let connect = tokio::net::TcpStream::connect(self.addr.as_str());
        matches!(
            tokio::time::timeout(READY_CONNECT_TIMEOUT, connect).await,
            Ok(Ok(_))
        )
    }

    /// Resolves when the function process exits.
    pub(crate) async fn exited(&self) -> WatchdogError {
        self.child.exited().await
    }

    /// SIGTERM, then SIGKILL after [`TERMINATE_GRACE`]; returns once the process is gone.
    pub(crate) async fn terminate(&self) {
        self.child.terminate(TERMINATE_GRACE).await;
    }
}

// === impl Supervised ===

/// The long-running child, owned by a monitor task that reports its exit and obeys
/// termination requests.
struct Supervised {
    command: String,
    exit: watch::Receiver<Option<ExitStatus>>,
    signals: mpsc::UnboundedSender<Signal>,
}

impl Supervised {
    fn spawn(argv: &[String], prefix_logs: bool) -> Result<Self, WatchdogError> {
        let mut cmd = command(argv);
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| WatchdogError::Spawn {
            command: argv[0].clone(),
            source,
        })?;
        tracing::info!(pid = child.id(), command = %argv.join(" "), "started the function process");
        forward_lines(
            child.stdout.take().expect("piped"),
            "stdout",
            prefix_logs,
            None,
        );
        forward_lines(
            child.stderr.take().expect("piped"),
            "stderr",
            prefix_logs,
            None,
        );
        let (exit_tx, exit) = watch::channel(None);
        let (signals, mut signal_rx) = mpsc::unbounded_channel::<Signal>();
        tokio::spawn(async move {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    Some(signal) = signal_rx.recv() => {
                        // `id()` is Some until the child is reaped, which only this task does.
                        if let Some(pid) = child.id() {
                            signal_group(pid, signal);
                        }
                    }
                }
            };
            let status = status.unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot wait for the function process");
                std::os::unix::process::ExitStatusExt::from_raw(1 << 8)
            });
            let _ = exit_tx.send(Some(status));
        });
        Ok(Supervised {
            command: argv[0].clone(),
            exit,
            signals,
        })
    }

    async fn exited(&self) -> WatchdogError {
        let mut exit = self.exit.clone();
        let status = match exit.wait_for(Option::is_some).await {
            Ok(status) => status.expect("waited for Some"),
            Err(_) => std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
        };
        WatchdogError::ChildExited {
            command: self.command.clone(),
            status,
        }
    }

    async fn terminate(&self, grace: Duration) {
        let _ = self.signals.send(Signal::TERM);
        if tokio::time::timeout(grace, self.exited()).await.is_err() {
            tracing::warn!(?grace, "the function process ignored SIGTERM; killing it");
            let _ = self.signals.send(Signal::KILL);
            let _ = self.exited().await;
        }
        let status = self
            .exit
            .borrow()
            .map(|s| s.to_string())
            .unwrap_or_default();
        tracing::info!(%status, "the function process stopped");
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-call-id", "abc".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-call-id"], "abc");
    }
}
