//! Turning a queued call into an HTTP request to one of the function's replicas, and making
//! it.
//!
//! Calls go straight to a ready replica, chosen, balanced and scaled from zero the way the
//! gateway does it (`ferry-invoke`), never through the gateway's sync route: so a call's
//! deadline is its own function's timeout, not the gateway's `upstream_timeout`. The request
//! is `<Path or "/">[?<QueryString>]` on the replica, with the original method, headers (minus
//! hop-by-hop ones, `Host`, `Content-Length` and `Expect`) and body, and `X-Call-Id`. A call
//! that could not be connected to its replica is sent to another ready one (at most
//! [`MAX_REPLICAS`]); one that reached a replica is never sent again by this function.
//!
//! `Function` must be a valid `name` or `name.namespace`, and the path must be a valid
//! request path (a `..` segment is resolved, never sent): a queued call reaches the function
//! it names and nothing else.

use std::time::Duration;

use bytes::Bytes;
use ferry_invoke::client::{self, BoxError, SendError};
use ferry_invoke::{Chosen, Invoker};
use ferry_proto::headers::{CALL_ID, FORWARDED_HOST};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use ferry_runtime::headers::strip_hop_by_hop;
use http::header::{CONTENT_LENGTH, EXPECT, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::Instant;

use crate::WorkerError;
use crate::error::{InvalidMessage, Unreachable};

/// The most replicas one invocation is offered to (when the first could not be connected to).
pub const MAX_REPLICAS: usize = 3;

/// One function call, ready to send.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `name` or `name.namespace`, as queued.
    pub function: String,
    /// The original method (`POST` when the message has none).
    pub method: Method,
    /// `<Path or "/">[?<QueryString>]`.
    pub path_and_query: PathAndQuery,
    /// The original headers, filtered, plus `X-Call-Id`.
    pub headers: HeaderMap,
    /// The original body.
    pub body: Bytes,
}

impl Invocation {
    /// Builds the call `request` describes.
    pub fn new(request: &QueueRequest, call_id: Option<&str>) -> Result<Invocation, WorkerError> {
        let method = match request.method.trim() {
            "" => Method::POST,
            m => Method::from_bytes(m.as_bytes())
                .map_err(|_| InvalidMessage::Method(m.to_string()))?,
        };
        FunctionRef::parse(&request.function, &Name::default_namespace())
            .map_err(InvalidMessage::Function)?;
        Ok(Invocation {
            function: request.function.clone(),
            method,
            path_and_query: path_and_query(request)?,
            headers: forwarded_headers(request, call_id),
            body: Bytes::copy_from_slice(&request.body),
        })
    }
}

/// `<Path or "/">[?<QueryString>]`, dot segments resolved and what cannot stand in a path
/// percent-encoded; refuses a path that climbs above the function's root.
pub fn path_and_query(request: &QueueRequest) -> Result<PathAndQuery, WorkerError> {
    let path = match request.path.as_str() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    // `Url` percent-encodes what cannot stand in a path (`?`, `#`, spaces) and resolves dot
    // segments; a path that climbed out would lose the marker segment.
    let mut url = reqwest::Url::parse("http://function/root").expect("a valid base URL");
    url.set_path(&format!("/root{path}"));
    let inside = url
        .path()
        .strip_prefix("/root")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let Some(rest) = inside else {
        return Err(InvalidMessage::PathLeaves(request.path.clone()).into());
    };
    let mut pq = if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    };
    let query = request.query_string.trim_start_matches('?');
    if !query.is_empty() {
        url.set_query(Some(query));
        pq.push('?');
        pq.push_str(url.query().unwrap_or_default());
    }
    pq.parse()
        .map_err(|e| InvalidMessage::PathOrQuery(e).into())
}

/// The original headers minus hop-by-hop ones (and those `Connection` names), `Host`,
/// `Content-Length` and `Expect`; `X-Call-Id` set to `call_id`; `X-Forwarded-Host` set to the
/// original `Host` unless present. Names or values that are not valid HTTP are dropped.
pub fn forwarded_headers(request: &QueueRequest, call_id: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in &request.header {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::debug!(header = %name, "dropping a header with an invalid name");
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(name.clone(), value);
            }
        }
    }
    strip_hop_by_hop(&mut headers);
    for name in [HOST, CONTENT_LENGTH, EXPECT] {
        headers.remove(name);
    }
    headers.remove(CALL_ID);
    if let Some(id) = call_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(CALL_ID, id);
    }
    if !request.host.is_empty() && !headers.contains_key(FORWARDED_HOST) {
        if let Ok(host) = HeaderValue::from_str(&request.host) {
            headers.insert(FORWARDED_HOST, host);
        }
    }
    headers
}

/// What the function answered: its status and headers now, its body to be read (cut at the
/// call's deadline, and counted in flight on its replica until it is read or dropped).
pub struct FunctionResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, unread.
    pub body: ResponseBody,
    /// When the call's time is up.
    pub deadline: Instant,
    /// The call's timeout.
    pub timeout: Duration,
}

/// A response body as the worker reads it.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

impl FunctionResponse {
    /// An answer with a body already read (tests, stand-ins).
    pub fn ready(status: StatusCode, headers: HeaderMap, body: Bytes) -> FunctionResponse {
        FunctionResponse {
            status,
            headers,
            body: http_body_util::Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
            deadline: Instant::now() + Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for FunctionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Sends `invocation` to a ready replica of its function (scaling it from zero and waiting
/// for it if need be) and returns the answer's head by the deadline: `timeout` after the call
/// was sent. The body is cut at the same deadline.
pub async fn invoke(
    invoker: &Invoker,
    invocation: &Invocation,
    timeout: Duration,
) -> Result<FunctionResponse, WorkerError> {
    let function = invocation.function.as_str();
    let (mut replica, _) = invoker.replica(function).await?;
    let deadline = Instant::now() + timeout;
    let mut tried: Vec<Authority> = Vec::new();
    loop {
        let request = request(invocation, replica.authority())?;
        let reason = match client::send(&invoker.client, request, deadline).await {
            Ok(response) => return Ok(answer(response, replica, deadline, timeout)),
            Err(SendError::Timeout) => return Err(WorkerError::Timeout(timeout)),
            Err(SendError::Failed(reason)) => {
                replica.exchange_failed();
                return Err(Unreachable::Replica {
                    replica: replica.authority().clone(),
                    reason,
                }
                .into());
            }
            Err(SendError::NotSent(reason)) => reason,
        };
        let failure = || {
            WorkerError::from(Unreachable::Replica {
                replica: replica.authority().clone(),
                reason: reason.clone(),
            })
        };
        replica.connect_failed();
        tried.push(replica.authority().clone());
        if tried.len() >= MAX_REPLICAS {
            return Err(failure());
        }
        match invoker.next_replica(function, &replica, &tried).await? {
            (Some(next), _) => {
                tracing::debug!(failed = %replica.authority(), next = %next.authority(), %reason,
                    "the call never reached the replica; sending it to another one");
                replica = next;
            }
            (None, _) => return Err(failure()),
        }
    }
}

fn request(
    invocation: &Invocation,
    authority: &Authority,
) -> Result<Request<axum::body::Body>, WorkerError> {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(invocation.path_and_query.clone())
        .build()
        .map_err(InvalidMessage::Uri)?;
    let mut request = Request::new(axum::body::Body::from(invocation.body.clone()));
    *request.method_mut() = invocation.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = invocation.headers.clone();
    Ok(request)
}

fn answer(
    response: http::Response<hyper::body::Incoming>,
    replica: Chosen,
    deadline: Instant,
    timeout: Duration,
) -> FunctionResponse {
    let (parts, body) = response.into_parts();
    let body = client::deadline_body(body, deadline, timeout, Some(replica.into_in_flight()));
    FunctionResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.boxed_unsync(),
        deadline,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(function: &str, path: &str, query: &str) -> QueueRequest {
        QueueRequest {
            function: function.into(),
            path: path.into(),
            query_string: query.into(),
            method: "POST".into(),
            ..Default::default()
        }
    }

    fn pq(function: &str, path: &str, query: &str) -> Result<String, String> {
        Invocation::new(&request(function, path, query), None)
            .map(|i| i.path_and_query.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn requests_go_to_the_replica_with_path_and_query() {
        let cases = [
            ("figlet", "", "", "/"),
            ("figlet.dev", "", "", "/"),
            ("f", "/x/y", "", "/x/y"),
            ("f", "/x/y/", "a=1&b=2", "/x/y/?a=1&b=2"),
            ("f", "x", "?q", "/x?q"),
            ("f", "/a b?c#d", "", "/a%20b%3Fc%23d"),
            ("f", "/a%2Fb", "x=%20", "/a%2Fb?x=%20"),
            ("f", "/a/../b", "", "/b"),
        ];
        for (function, path, query, want) in cases {
            assert_eq!(pq(function, path, query).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn calls_cannot_leave_the_function() {
        for (function, path) in [
            ("f", "/../../system/functions"),
            ("f", "/%2e%2e/other"),
            ("f", "/.."),
            ("../system", ""),
            ("F", ""),
            ("", ""),
            ("f/x", ""),
            ("a.b.c", ""),
        ] {
            let err = pq(function, path, "").unwrap_err();
            assert!(
                err.starts_with("invalid message"),
                "{function} {path}: {err}"
            );
        }
    }

    #[test]
    fn methods() {
        let mut r = request("f", "", "");
        for (given, want) in [("", "POST"), ("GET", "GET"), ("PATCH", "PATCH")] {
            r.method = given.into();
            assert_eq!(Invocation::new(&r, None).unwrap().method, want);
        }
        r.method = "GE T".into();
        assert!(Invocation::new(&r, None).is_err());
    }

    #[test]
    fn headers_are_filtered_and_the_call_id_set() {
        let mut r = request("f", "", "");
        r.host = "api.example.com".into();
        let h = |pairs: &[(&str, &[&str])]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        r.header = h(&[
            ("Content-Type", &["application/json"]),
            ("Authorization", &["Bearer t"]),
            ("X-Multi", &["a", "b"]),
            ("Connection", &["keep-alive, X-Private"]),
            ("X-Private", &["secret"]),
            ("Keep-Alive", &["timeout=5"]),
            ("Transfer-Encoding", &["chunked"]),
            ("Upgrade", &["h2c"]),
            ("Host", &["gateway:8080"]),
            ("Content-Length", &["12"]),
            ("Expect", &["100-continue"]),
            ("X-Call-Id", &["old"]),
            ("Bad Name", &["x"]),
            ("X-Bad-Value", &["a\nb"]),
        ]);
        let headers = forwarded_headers(&r, Some("call-1"));
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "authorization",
                "content-type",
                "x-call-id",
                "x-forwarded-host",
                "x-multi"
            ]
        );
        assert_eq!(headers["x-call-id"], "call-1");
        assert_eq!(headers["x-forwarded-host"], "api.example.com");
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);

        // Without an id, none is sent; an existing X-Forwarded-Host is kept.
        r.header = h(&[("X-Forwarded-Host", &["original"])]);
        let headers = forwarded_headers(&r, None);
        assert!(!headers.contains_key("x-call-id"));
        assert_eq!(headers["x-forwarded-host"], "original");
    }
}
