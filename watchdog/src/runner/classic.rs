//! What `mode=classic` adds to the fork runner to behave like OpenFaaS's classic watchdog:
//! the methods it forks for, its extra CGI variables, its choice of `Content-Type` when
//! `content_type` is unset, and its per-request log lines (`Forking fprocess.`,
//! `Wrote <n> Bytes - Duration: <secs>s`).

use std::io::Write;
use std::process::ExitStatus;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{Body, empty};
use crate::config::Config;

/// The classic watchdog's per-request settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Classic {
    /// `combine_output`: stdout and stderr share one pipe, and both make the response.
    pub(crate) combine_output: bool,
    /// `cgi_headers`: set the `Http_*` variables.
    pub(crate) cgi_headers: bool,
    /// `write_debug`: output to the watchdog's stdout, failures logged in detail.
    pub(crate) write_debug: bool,
}

impl Classic {
    pub(crate) fn from_config(config: &Config) -> Self {
        Classic {
            combine_output: config.combine_output,
            cgi_headers: config.cgi_headers,
            write_debug: config.write_debug,
        }
    }
}

/// The methods the classic watchdog forks for; any other is answered 405 without forking.
pub(crate) fn forks_for(method: &Method) -> bool {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .contains(method)
}

/// The classic watchdog's answer to other methods: 405, empty.
pub(crate) fn method_not_allowed() -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}

/// The variables the classic watchdog sets on top of the common CGI ones: the request's
/// content length (Go's `Request.ContentLength`: the header, else -1 for a chunked body,
/// else 0) as `Http_Content_Length` and its older spelling `Http_ContentLength`.
pub(crate) fn extra_env(parts: &Parts) -> [(String, String); 2] {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let length = match declared {
        Some(n) => n.to_string(),
        None if parts.headers.contains_key(header::TRANSFER_ENCODING) => "-1".to_string(),
        None => "0".to_string(),
    };
    [
        ("Http_ContentLength".to_string(), length.clone()),
        ("Http_Content_Length".to_string(), length),
    ]
}

/// Logs what the classic watchdog logs before forking (and, with `write_debug` and
/// `cgi_headers`, the query and path it passes).
pub(crate) fn log_forking(classic: &Classic, parts: &Parts) {
    if classic.write_debug && classic.cgi_headers {
        tracing::info!("Query  {}", parts.uri.query().unwrap_or_default());
        tracing::info!("Path  {}", parts.uri.path());
    }
    tracing::info!("Forking fprocess.");
}

/// Logs a successful run as the classic watchdog does; with `write_debug` the output itself
/// goes to the watchdog's stdout instead of its size to the log.
pub(crate) fn log_success(classic: &Classic, output: &[u8], elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    if classic.write_debug {
        let mut out = std::io::stdout().lock();
        // Debug output that cannot be written has nowhere else to go.
        let _ = out.write_all(output).and_then(|()| out.flush());
        tracing::info!("Duration: {secs:.6}s");
    } else {
        tracing::info!("Wrote {} Bytes - Duration: {secs:.6}s", output.len());
    }
}

/// With `write_debug`, logs a failed run as the classic watchdog does.
pub(crate) fn log_failure(classic: &Classic, status: ExitStatus, output: &[u8]) {
    if classic.write_debug {
        tracing::info!("Success=false, Error={status}");
        tracing::info!("Out={}", String::from_utf8_lossy(output));
    }
}

/// The response `Content-Type` when `content_type` is unset: the request's, else one
/// sniffed from the output.
pub(crate) fn content_type(parts: &Parts, output: &[u8]) -> HeaderValue {
    match parts.headers.get(header::CONTENT_TYPE) {
        Some(requested) if !requested.is_empty() => requested.clone(),
        _ => HeaderValue::from_static(sniff(output)),
    }
}

/// Signatures recognised by [`sniff`], matched after leading whitespace: HTML tags (case
/// does not matter; the tag must be followed by a space or `>`).
const HTML_TAGS: &[&[u8]] = &[
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// Exact signatures at the very start of the output.
const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
];

/// A content type for a response without one, as Go's HTTP server picks it for the classic
/// watchdog (a subset of its content sniffing): HTML, XML and a few binary formats by
/// signature, then plain text unless the first 512 bytes hold control bytes.
pub(crate) fn sniff(output: &[u8]) -> &'static str {
    let head = &output[..output.len().min(512)];
    let trimmed = head.trim_ascii_start();
    let is_html = HTML_TAGS.iter().any(|tag| {
        trimmed.len() > tag.len()
            && trimmed[..tag.len()].eq_ignore_ascii_case(tag)
            && matches!(trimmed[tag.len()], b' ' | b'>')
    });
    if is_html {
        return "text/html; charset=utf-8";
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if let Some((_, kind)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return kind;
    }
    let binary = head
        .iter()
        .any(|b| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn forks_only_for_the_classic_methods() {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(forks_for(&method.parse().unwrap()), "{method}");
        }
        for method in ["HEAD", "OPTIONS", "TRACE", "CONNECT", "UPDATE"] {
            assert!(!forks_for(&method.parse().unwrap()), "{method}");
        }
        assert_eq!(method_not_allowed().status(), 405);
    }

    #[test]
    fn content_length_variables_follow_go() {
        let declared = parts(
            Request::post("/")
                .header("content-length", "5")
                .body(())
                .unwrap(),
        );
        let chunked = parts(
            Request::post("/")
                .header("transfer-encoding", "chunked")
                .body(())
                .unwrap(),
        );
        let none = parts(Request::get("/").body(()).unwrap());
        let value = |p: &Parts| {
            let [(old, a), (new, b)] = extra_env(p);
            assert_eq!(
                (old.as_str(), new.as_str()),
                ("Http_ContentLength", "Http_Content_Length")
            );
            assert_eq!(a, b);
            a
        };
        assert_eq!(value(&declared), "5");
        assert_eq!(value(&chunked), "-1");
        assert_eq!(value(&none), "0");
    }

    #[test]
    fn content_type_mirrors_the_request_else_sniffs() {
        let json = parts(
            Request::post("/")
                .header("content-type", "application/json")
                .body(())
                .unwrap(),
        );
        assert_eq!(content_type(&json, b"\x00\x01"), "application/json");
        let bare = parts(Request::post("/").body(()).unwrap());
        assert_eq!(content_type(&bare, b"hi\n"), "text/plain; charset=utf-8");
    }

    #[test]
    fn sniffing_recognises_text_html_and_binary() {
        assert_eq!(sniff(b""), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"{\"ok\":true}\n"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"  \n<html><body>"), "text/html; charset=utf-8");
        assert_eq!(sniff(b"<!doctype html>"), "text/html; charset=utf-8");
        assert_eq!(sniff(b"<p>x</p>"), "text/html; charset=utf-8");
        assert_eq!(
            sniff(b"<pre>x"),
            "text/plain; charset=utf-8",
            "<p must end the tag"
        );
        assert_eq!(sniff(b"<?xml version=\"1.0\"?>"), "text/xml; charset=utf-8");
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(sniff(b"GIF89a..."), "image/gif");
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), "image/jpeg");
        assert_eq!(sniff(b"text\x00more"), "application/octet-stream");
        // Only the first 512 bytes are looked at.
        let mut late = vec![b'a'; 600];
        late[550] = 0;
        assert_eq!(sniff(&late), "text/plain; charset=utf-8");
    }
}
