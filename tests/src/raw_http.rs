//! HTTP/1.1 requests written byte for byte on a TCP connection, for what a client library
//! would normalise or refuse to send: `..`, `//` and percent-encoded slashes in paths, header
//! names in any case, a header twice, a malformed request line. The answer is read to the end
//! of the connection (the request should say `Connection: close`), chunked bodies decoded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a raw exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, headers as sent (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code; 0 when the server closed the connection without an answer.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunks if it was chunked, as UTF-8 (lossy).
    pub body: String,
}

impl RawResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` to `addr` and reads the answer until the server closes the connection.
pub async fn send(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        match stream.write_all(request).await {
            // The server answered and closed before the whole request was sent (e.g. a body
            // over its limit): its answer is still there to read.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) => {}
            other => other?,
        }
        let mut answer = Vec::new();
        // A reset after a complete answer (the server closing with unread body bytes) still
        // leaves what was read.
        let _ = stream.read_to_end(&mut answer).await;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {addr} within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("raw request to {addr}: {e}"));
    parse(&answer)
}

/// Parses a complete HTTP/1.1 answer.
pub fn parse(answer: &[u8]) -> RawResponse {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return RawResponse {
            status: 0,
            headers: Vec::new(),
            body: String::from_utf8_lossy(answer).into_owned(),
        };
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &answer[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The data of a chunked body (as much as is complete).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || rest.len() < start + size {
            break;
        }
        body.extend_from_slice(&rest[start..start + size]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = parse(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{}");
        assert_eq!(plain.status, 404);
        assert_eq!(plain.header("content-type"), Some("application/json"));
        assert_eq!(plain.body, "{}");
        let chunked = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!((chunked.status, chunked.body.as_str()), (200, "abcde"));
        assert_eq!(parse(b"").status, 0);
    }
}
