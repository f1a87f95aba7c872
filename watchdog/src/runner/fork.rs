//! The fork modes: `fprocess` runs once per request (`streaming`, `serializing`, and
//! `classic`, which adds the [`classic`](super::classic) behaviour on top of serializing).
//!
//! The request body is streamed to the child's stdin by one task, while a supervisor task
//! reads stdout in chunks and reports [`Event`]s over a small channel. The handler waits for
//! the first event before committing a status: output means 200 (streaming: the rest follows
//! as the body; serializing: everything is collected first), an exit without output is
//! judged by its status, and the deadline means 504. If the receiving side goes away (the
//! client disconnected, `write_timeout` expired) or the deadline passes, the supervisor kills
//! the child's whole process group, so no function outlives its request.

use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::classic::{self, Classic};
use super::process::{Tail, command, forward_lines, signal_group};
use crate::body::{Body, BoxError, Expired, full};
use crate::config::{Config, Mode};
use crate::error::WatchdogError;

/// Runs the function per request.
pub(crate) struct ForkRunner {
    argv: Arc<[String]>,
    streaming: bool,
    /// `None` only in classic mode without `content_type`: chosen per response.
    content_type: Option<HeaderValue>,
    prefix_logs: bool,
    classic: Option<Classic>,
}

/// What the supervisor reports.
enum Event {
    Output(Bytes),
    Exited { status: ExitStatus, stderr: String },
    TimedOut,
}

/// The child's output as the supervisor reads it: its stdout, or in classic mode with
/// `combine_output` the one pipe it writes both stdout and stderr to.
type Output = Box<dyn AsyncRead + Unpin + Send>;

impl ForkRunner {
    /// The runner for a fork mode; the error is an invalid `content_type`.
    pub(crate) fn new(config: &Config) -> Result<Self, String> {
        let classic = (config.mode == Mode::Classic).then(|| Classic::from_config(config));
        let content_type = match (classic, config.content_type.as_str()) {
            (Some(_), "") => None,
            (_, value) => Some(
                HeaderValue::from_str(value)
                    .map_err(|_| format!("content_type={value:?} is not a valid header value"))?,
            ),
        };
        Ok(ForkRunner {
            argv: config.command.as_slice().into(),
            streaming: config.mode == Mode::Streaming,
            content_type,
            prefix_logs: config.prefix_logs,
            classic,
        })
    }

    pub(crate) async fn invoke(
        &self,
        req: Request<Body>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, WatchdogError> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let body = match &self.classic {
            None => body,
            Some(classic) => {
                if !classic::forks_for(&parts.method) {
                    return Ok(classic::method_not_allowed());
                }
                classic::log_forking(classic, &parts);
                // The classic watchdog reads the whole body before starting the function.
                let bytes = body.collect().await.map_err(WatchdogError::RequestBody)?;
                full(bytes.to_bytes())
            }
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut rx = self.spawn(&parts, body, deadline)?;

        let mut collected = BytesMut::new();
        loop {
            match rx.recv().await {
                Some(Event::Output(chunk)) if self.streaming => {
                    let body = ChildOutput {
                        first: Some(chunk),
                        rx,
                    };
                    return Ok(self.ok(crate::body::boxed(body), &parts, &[]));
                }
                Some(Event::Output(chunk)) => collected.extend_from_slice(&chunk),
                Some(Event::Exited { status, .. }) if status.success() => {
                    let output = collected.freeze();
                    if let Some(classic) = &self.classic {
                        classic::log_success(classic, &output, started.elapsed());
                    }
                    return Ok(self.ok(full(output.clone()), &parts, &output));
                }
                Some(Event::Exited { status, stderr }) => {
                    return Err(self.failed(status, stderr, &collected));
                }
                Some(Event::TimedOut) => {
                    return Err(WatchdogError::ExecTimeout(timeout.unwrap_or_default()));
                }
                None => {
                    return Err(WatchdogError::Io {
                        context: "function supervisor ended unexpectedly",
                        source: std::io::Error::other("channel closed"),
                    });
                }
            }
        }
    }

    /// Starts the child with its stdin fed from `body` and a supervisor reporting on it.
    fn spawn(
        &self,
        parts: &Parts,
        body: Body,
        deadline: Option<Instant>,
    ) -> Result<mpsc::Receiver<Event>, WatchdogError> {
        let mut cmd = command(&self.argv);
        cmd.stdin(Stdio::piped());
        if self.classic.is_none_or(|c| c.cgi_headers) {
            cmd.envs(cgi_env(parts));
        }
        if self.classic.is_some_and(|c| c.cgi_headers) {
            cmd.envs(classic::extra_env(parts));
        }
        let combined = match self.classic {
            Some(c) if c.combine_output => {
                Some(combine(&mut cmd).map_err(|source| WatchdogError::Io {
                    context: "cannot create the function's output pipe",
                    source,
                })?)
            }
            _ => None,
        };
        let spawned = cmd.spawn();
        // `cmd` holds our copies of a combined pipe's write end: the output only ends once
        // they are closed.
        drop(cmd);
        let mut child = spawned.map_err(|source| WatchdogError::Spawn {
            command: self.argv[0].clone(),
            source,
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let output: Output = match combined {
            Some(pipe) => Box::new(pipe),
            None => Box::new(child.stdout.take().expect("stdout is piped")),
        };
        let tail = Tail::default();
        let stderr_task = child
            .stderr
            .take()
            .map(|stderr| forward_lines(stderr, "stderr", self.prefix_logs, Some(tail.clone())));
        let writer = AbortOnDrop(tokio::spawn(feed_stdin(body, stdin)));

        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(supervise(
            child,
            output,
            deadline,
            tx,
            writer,
            stderr_task,
            tail,
        ));
        Ok(rx)
    }

    /// A 200 with `body`; `output` is the whole body when known (for classic sniffing).
    fn ok(&self, body: Body, parts: &Parts, output: &[u8]) -> Response<Body> {
        let content_type = match &self.content_type {
            Some(value) => value.clone(),
            None => classic::content_type(parts, output),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        resp
    }

    /// The error for an unsuccessful exit: with the end of stderr, or in classic mode with
    /// everything the function wrote to its output (stdout, and stderr when combined).
    fn failed(&self, status: ExitStatus, stderr: String, output: &[u8]) -> WatchdogError {
        let stderr = match &self.classic {
            None => stderr,
            Some(classic) => {
                classic::log_failure(classic, status, output);
                String::from_utf8_lossy(output).into_owned()
            }
        };
        WatchdogError::FunctionFailed { status, stderr }
    }
}

/// Points the child's stdout and stderr at one new pipe (as Go's `CombinedOutput` does, so
/// the two interleave in the order they were written) and returns its read end.
fn combine(cmd: &mut Command) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
    let (tx, rx) = tokio::net::unix::pipe::pipe()?;
    let write = tx.into_blocking_fd()?;
    cmd.stderr(write.try_clone()?).stdout(write);
    Ok(rx)
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies the request body to the child's stdin, then closes it.
async fn feed_stdin(mut body: Body, mut stdin: ChildStdin) {
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
            Err(error) => {
                tracing::debug!(%error, "request body ended early; closing the function's stdin");
                return;
            }
        };
        // A child that exits or closes stdin early is not an error of the request.
        if stdin.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Reads stdout into events until the child exits (or must be killed).
async fn supervise(
    mut child: Child,
    mut stdout: Output,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Event>,
    _writer: AbortOnDrop,
    stderr_task: Option<JoinHandle<()>>,
    tail: Tail,
) {
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut buf = BytesMut::new();
    let mut pending: Option<Bytes> = None;
    let mut eof = false;
    let mut status: Option<ExitStatus> = None;

    let status = loop {
        if let (true, None, Some(status)) = (eof, &pending, status) {
            break status;
        }
        if pending.is_none() && buf.capacity() < 1024 {
            buf.reserve(16 * 1024);
        }
        tokio::select! {
            biased;
            () = &mut expired => {
                kill(&mut child, status).await;
                let _ = tx.send(Event::TimedOut).await;
                return;
            }
            permit = tx.reserve(), if pending.is_some() => match permit {
                Ok(permit) => permit.send(Event::Output(pending.take().expect("checked"))),
                Err(_) => return kill(&mut child, status).await,
            },
            () = tx.closed(), if pending.is_none() => return kill(&mut child, status).await,
            read = stdout.read_buf(&mut buf), if pending.is_none() && !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(_) => pending = Some(buf.split().freeze()),
            },
            waited = child.wait(), if status.is_none() => {
                status = Some(waited.unwrap_or_else(|_| failed_status()));
            }
        }
    };
    // stderr ends with the process; bound the wait in case a grandchild still holds it.
    if let Some(task) = stderr_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if !status.success() {
        tracing::info!(%status, "function exited unsuccessfully");
    }
    let _ = tx
        .send(Event::Exited {
            status,
            stderr: tail.text(),
        })
        .await;
}

/// Kills the child's process group, unless the child was already reaped (its id may then
/// be reused), and reaps it.
async fn kill(child: &mut Child, reaped: Option<ExitStatus>) {
    if reaped.is_none() {
        if let Some(pid) = child.id() {
            signal_group(pid, Signal::KILL);
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

fn failed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(1 << 8)
}

/// The streaming response body: the first chunk, then whatever the supervisor sends.
struct ChildOutput {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Event>,
}

impl HttpBody for ChildOutput {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Event::Output(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(Some(Event::TimedOut)) => {
                tracing::info!("exec_timeout after the response started; the body is cut short");
                Poll::Ready(Some(Err(Box::new(Expired("exec_timeout".into())))))
            }
            Poll::Ready(Some(Event::Exited { .. }) | None) => Poll::Ready(None),
        }
    }
}

/// The CGI-style variables of a forked request (of-watchdog names): one `Http_<Name>` per
/// request header (first value), plus `Http_Method`, `Http_Path`, `Http_Query` (if any),
/// `Http_Host`, `Http_Content_Length` (if known) and `Http_Transfer_Encoding` (if any).
pub(crate) fn cgi_env(parts: &Parts) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for name in parts.headers.keys() {
        if let Some(value) = parts.headers.get(name) {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            env.push((cgi_name(name.as_str()), value));
        }
    }
    env.push(("Http_Method".into(), parts.method.to_string()));
    env.push(("Http_Path".into(), parts.uri.path().to_string()));
    if let Some(query) = parts.uri.query() {
        env.push(("Http_Query".into(), query.to_string()));
    }
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            env.push(("Http_Host".into(), authority.to_string()));
        }
    }
    env
}

/// `x-call-id` → `Http_X_Call_Id`: Go's canonical header casing, `-` replaced by `_`.
pub(crate) fn cgi_name(header: &str) -> String {
    let mut out = String::with_capacity(header.len() + 5);
    out.push_str("Http_");
    let mut upper = true;
    for c in header.chars() {
        if c == '-' {
            out.push('_');
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_use_go_casing() {
        assert_eq!(cgi_name("x-call-id"), "Http_X_Call_Id");
        assert_eq!(cgi_name("content-type"), "Http_Content_Type");
        assert_eq!(cgi_name("user-agent"), "Http_User_Agent");
        assert_eq!(cgi_name("X-FOO-bar"), "Http_X_Foo_Bar");
        assert_eq!(cgi_name("accept"), "Http_Accept");
    }

    #[test]
    fn request_becomes_cgi_variables() {
        let req = Request::post("/fn/sub?a=1&b=two")
            .header("Host", "gw:8080")
            .header("X-Call-Id", "abc")
            .header("x-multi", "first")
            .header("x-multi", "second")
            .header("content-length", "5")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let env: std::collections::HashMap<_, _> =
            cgi_env(&req.into_parts().0).into_iter().collect();
        assert_eq!(env["Http_Method"], "POST");
        assert_eq!(env["Http_Path"], "/fn/sub");
        assert_eq!(env["Http_Query"], "a=1&b=two");
        assert_eq!(env["Http_Host"], "gw:8080");
        assert_eq!(env["Http_X_Call_Id"], "abc");
        assert_eq!(env["Http_X_Multi"], "first");
        assert_eq!(env["Http_Content_Length"], "5");
        assert_eq!(env["Http_Transfer_Encoding"], "chunked");

        let req = Request::get("http://example:1/x").body(()).unwrap();
        let env: std::collections::HashMap<_, _> =
            cgi_env(&req.into_parts().0).into_iter().collect();
        assert!(!env.contains_key("Http_Query"));
        assert_eq!(env["Http_Host"], "example:1");
    }
}
