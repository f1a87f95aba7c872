//! `--healthcheck`: a service checking itself from inside its own container.
//!
//! ferry's images are `FROM scratch`: there is no `curl` or `wget` for a Docker `HEALTHCHECK`.
//! Each service binary instead answers `--healthcheck` by asking its own running copy for
//! `GET http://127.0.0.1:<port>/healthz` (or the address in `bind` when that is one
//! interface, not all of them) and exiting 0 on `200`, 1 otherwise. The request is a
//! plain blocking HTTP/1.0 exchange over a [`TcpStream`] with short timeouts: no runtime, no
//! dependencies, no DNS. A gateway serving HTTPS runs the same [`exchange`] over TLS.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::env::{self, Env};
use crate::listen;

/// Connect, write and read timeout of one check.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The status code of `GET <path>` on `address`, over HTTP/1.0.
pub fn probe(address: SocketAddr, path: &str, timeout: Duration) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    exchange(&mut stream, &address.to_string(), path)
}

/// Sends `GET <path>` (HTTP/1.0, `Host: <host>`) on a connected `stream` (plain TCP, or TLS
/// for a gateway serving HTTPS) and reads the status code of the answer.
pub fn exchange(stream: &mut (impl Read + Write), host: &str, path: &str) -> io::Result<u16> {
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ferry-healthcheck\r\n\r\n"
    )?;
    stream.flush()?;
    // Only the status line matters: "HTTP/1.x NNN reason".
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status(&head).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not an HTTP status line: {:?}",
                String::from_utf8_lossy(&head)
            ),
        )
    })
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let version = words.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// What a binary's `--healthcheck` does: reads its listen port from `port_var` (default
/// `default_port`), probes `/healthz` there on [`listen::probe_address`], prints why on
/// failure, and returns the exit code (0 for `200`, 1 otherwise).
pub fn run(env: &impl Env, program: &str, port_var: &str, default_port: u16) -> ExitCode {
    let port = match env::parse_or(env, port_var, default_port, crate::settings::number) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("{program} --healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = SocketAddr::new(listen::probe_address(env), port);
    report(program, address, probe(address, "/healthz", TIMEOUT))
}

/// The exit code of a `--healthcheck` whose `GET /healthz` on `address` had `result`
/// (0 for `200`, 1 otherwise), printing why on failure.
pub fn report(program: &str, address: SocketAddr, result: io::Result<u16>) -> ExitCode {
    match result {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{program} --healthcheck: GET /healthz on {address} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{program} --healthcheck: GET /healthz on {address}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread;

    use super::*;

    /// A one-shot server answering `response` to the first request; returns its port and the
    /// request line it received.
    fn serve_once(response: &'static str) -> (u16, thread::JoinHandle<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("address").port();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("header") <= 2 {
                    break;
                }
            }
            reader
                .get_mut()
                .write_all(response.as_bytes())
                .expect("write");
            request_line
        });
        (port, handle)
    }

    #[test]
    fn healthy_service_exits_zero() {
        let (port, server) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let env_port = port.to_string();
        let env: HashMap<&str, &str> = [("port", &*env_port)].into();
        assert_eq!(run(&env, "test", "port", 1), ExitCode::SUCCESS);
        assert_eq!(server.join().expect("server"), "GET /healthz HTTP/1.0\r\n");
    }

    #[test]
    fn unhealthy_or_absent_service_fails() {
        let (port, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(probe(address, "/healthz", TIMEOUT).expect("probe"), 503);
        server.join().expect("server");
        let env_port = port.to_string();
        let env: HashMap<&str, &str> = [("port", &*env_port)].into();
        // Nothing listens any more.
        assert_eq!(run(&env, "test", "port", 1), ExitCode::FAILURE);
        let bad: HashMap<&str, &str> = [("port", "http")].into();
        assert_eq!(run(&bad, "test", "port", 1), ExitCode::FAILURE);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }
}
