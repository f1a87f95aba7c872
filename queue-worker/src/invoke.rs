//! Turning a queued call into an HTTP request to the function, and making it.
//!
//! Functions are invoked through the gateway's sync route, as OpenFaaS's worker does:
//! `<gateway_url>/function/<Function><Path or "/">[?<QueryString>]`, with the original method,
//! headers (minus hop-by-hop ones, `Host`, `Content-Length` and `Expect`) and body, and
//! `X-Call-Id`. The gateway then resolves a replica, scales from zero and counts the call.
//!
//! `Function` must be a valid `name` or `name.namespace`, and the path may not climb out of
//! `/function/<Function>` (`..` segments, also percent-encoded): a queued call can reach the
//! function it names and nothing else on the gateway.

use std::time::Duration;

use bytes::Bytes;
use ferry_proto::headers::{CALL_ID, FORWARDED_HOST, HOP_BY_HOP};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use reqwest::Url;

use crate::WorkerError;

/// One function call, ready to send.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The original method (`POST` when the message has none).
    pub method: Method,
    /// `<gateway_url>/function/<Function><Path>?<QueryString>`.
    pub url: Url,
    /// The original headers, filtered, plus `X-Call-Id`.
    pub headers: HeaderMap,
    /// The original body.
    pub body: Bytes,
}

impl Invocation {
    /// Builds the call `request` describes, through the gateway at `gateway`.
    pub fn new(
        gateway: &Url,
        request: &QueueRequest,
        call_id: Option<&str>,
    ) -> Result<Invocation, WorkerError> {
        let method = match request.method.trim() {
            "" => Method::POST,
            m => Method::from_bytes(m.as_bytes())
                .map_err(|_| WorkerError::InvalidMessage(format!("invalid Method {m:?}")))?,
        };
        Ok(Invocation {
            method,
            url: function_url(gateway, request)?,
            headers: forwarded_headers(request, call_id),
            body: Bytes::copy_from_slice(&request.body),
        })
    }
}

/// `<gateway>/function/<Function><Path or "/">[?<QueryString>]`; refuses invalid function
/// names and paths that would leave the function's route.
pub fn function_url(gateway: &Url, request: &QueueRequest) -> Result<Url, WorkerError> {
    let function = request.function.as_str();
    FunctionRef::parse(function, &Name::default_namespace())
        .map_err(|e| WorkerError::InvalidMessage(format!("invalid Function: {e}")))?;
    let route = format!(
        "{}/function/{function}",
        gateway.path().trim_end_matches('/')
    );
    let path = match request.path.as_str() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    let mut url = gateway.clone();
    // `set_path` percent-encodes what cannot stand in a path (`?`, `#`, spaces) and resolves
    // dot segments, so the check below sees the path the gateway will see.
    url.set_path(&format!("{route}{path}"));
    let inside = url
        .path()
        .strip_prefix(&route)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !inside {
        return Err(WorkerError::InvalidMessage(format!(
            "Path {:?} leaves /function/{function}",
            request.path
        )));
    }
    let query = request.query_string.trim_start_matches('?');
    url.set_query((!query.is_empty()).then_some(query));
    Ok(url)
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

/// Removes hop-by-hop headers: the standard ones and any that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

/// What the function answered.
#[derive(Debug, Clone)]
pub struct FunctionResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

/// Sends `invocation` and reads the whole answer, within `timeout`.
pub async fn invoke(
    client: &reqwest::Client,
    invocation: &Invocation,
    timeout: Duration,
) -> Result<FunctionResponse, WorkerError> {
    let call = async {
        let response = client
            .request(invocation.method.clone(), invocation.url.clone())
            .headers(invocation.headers.clone())
            .body(invocation.body.clone())
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>(FunctionResponse {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(WorkerError::Timeout(timeout)),
        Ok(Err(e)) => Err(WorkerError::Unreachable(e)),
        Ok(Ok(response)) => Ok(response),
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

    fn url(gateway: &str, function: &str, path: &str, query: &str) -> Result<String, String> {
        function_url(
            &Url::parse(gateway).unwrap(),
            &request(function, path, query),
        )
        .map(String::from)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn urls_go_through_the_gateway_sync_route() {
        let gw = "http://127.0.0.1:8080";
        let cases = [
            ("figlet", "", "", "http://127.0.0.1:8080/function/figlet/"),
            (
                "figlet.dev",
                "",
                "",
                "http://127.0.0.1:8080/function/figlet.dev/",
            ),
            ("f", "/x/y", "", "http://127.0.0.1:8080/function/f/x/y"),
            (
                "f",
                "/x/y/",
                "a=1&b=2",
                "http://127.0.0.1:8080/function/f/x/y/?a=1&b=2",
            ),
            ("f", "x", "?q", "http://127.0.0.1:8080/function/f/x?q"),
            (
                "f",
                "/a b?c#d",
                "",
                "http://127.0.0.1:8080/function/f/a%20b%3Fc%23d",
            ),
            (
                "f",
                "/a%2Fb",
                "x=%20",
                "http://127.0.0.1:8080/function/f/a%2Fb?x=%20",
            ),
            ("f", "/a/../b", "", "http://127.0.0.1:8080/function/f/b"),
        ];
        for (function, path, query, want) in cases {
            assert_eq!(
                url(gw, function, path, query).as_deref(),
                Ok(want),
                "{path}"
            );
        }
        assert_eq!(
            url("http://gw:8080/base/", "f", "/p", "").as_deref(),
            Ok("http://gw:8080/base/function/f/p")
        );
    }

    #[test]
    fn calls_cannot_leave_the_function_route() {
        let gw = "http://127.0.0.1:8080";
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
            let err = url(gw, function, path, "").unwrap_err();
            assert!(
                err.starts_with("invalid message"),
                "{function} {path}: {err}"
            );
        }
    }

    #[test]
    fn methods() {
        let gw = Url::parse("http://gw").unwrap();
        let mut r = request("f", "", "");
        for (given, want) in [("", "POST"), ("GET", "GET"), ("PATCH", "PATCH")] {
            r.method = given.into();
            assert_eq!(Invocation::new(&gw, &r, None).unwrap().method, want);
        }
        r.method = "GE T".into();
        assert!(Invocation::new(&gw, &r, None).is_err());
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
