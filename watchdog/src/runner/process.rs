//! Child-process plumbing shared by the runners: building the command, forwarding its output
//! to the log line by line, and signalling its process group.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;

/// Longest log line forwarded in one piece; longer lines are split (of-watchdog's
/// `log_buffer_size` default, 64 KiB).
const MAX_LINE: usize = 64 * 1024;

/// How much of a forked function's stderr is kept for the error response.
pub(super) const STDERR_TAIL: usize = 4 * 1024;

/// A command for `argv` with piped stdout and stderr, in a process group of its own (so
/// that a timeout can kill everything it started), killed if its handle is dropped.
pub(super) fn command(argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// The last [`STDERR_TAIL`] bytes written by a child.
#[derive(Debug, Default, Clone)]
pub(super) struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn push(&self, line: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if buf.len() > STDERR_TAIL {
            let cut = buf.len() - STDERR_TAIL;
            buf.drain(..cut);
        }
    }

    /// The tail as text (lossy UTF-8), without the final newline.
    pub(super) fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf)
            .trim_end_matches('\n')
            .to_string()
    }
}

/// Copies `reader` to the watchdog's stderr line by line until it ends.
///
/// With `prefix`, each line reads `<RFC 3339 time> <stream>: <line>`; without, the line is
/// written as is (for functions that log JSON). Lines also go to `tail` when given.
pub(super) fn forward_lines<R>(
    mut reader: R,
    stream: &'static str,
    prefix: bool,
    tail: Option<Tail>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 8 * 1024];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(trim_eol(&line), stream, prefix, tail.as_ref());
            }
            if pending.len() >= MAX_LINE {
                emit(&pending, stream, prefix, tail.as_ref());
                pending.clear();
            }
        }
        if !pending.is_empty() {
            emit(&pending, stream, prefix, tail.as_ref());
        }
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn emit(line: &[u8], stream: &str, prefix: bool, tail: Option<&Tail>) {
    if let Some(tail) = tail {
        tail.push(line);
    }
    let mut err = std::io::stderr().lock();
    // A log line that cannot be written has nowhere else to go.
    let _ = if prefix {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        write!(err, "{now} {stream}: ").and_then(|()| err.write_all(line))
    } else {
        err.write_all(line)
    }
    .and_then(|()| err.write_all(b"\n"));
}

/// Sends `signal` to the process group led by `pid`.
///
/// Callers only pass the pid of a child they have not reaped yet (`Child::id()` returns
/// `Some`), so the group id cannot have been reused by an unrelated process.
pub(super) fn signal_group(pid: u32, signal: Signal) {
    let Some(pgid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if pgid.is_init() {
        return;
    }
    if let Err(error) = rustix::process::kill_process_group(pgid, signal) {
        let signal = signal.as_raw();
        tracing::debug!(pid, signal, %error, "cannot signal the function's process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let tail = Tail::default();
        tail.push(b"first");
        for _ in 0..STDERR_TAIL {
            tail.push(b"x");
        }
        tail.push(b"last");
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL);
        assert!(
            text.ends_with("x\nlast") && !text.contains("first"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn forwards_lines_into_the_tail() {
        let tail = Tail::default();
        let input: &[u8] = b"one\r\ntwo\nthree";
        forward_lines(input, "stderr", true, Some(tail.clone()))
            .await
            .unwrap();
        assert_eq!(tail.text(), "one\ntwo\nthree");
    }
}
