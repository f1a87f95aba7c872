//! Header handling shared by the proxy paths and the async path: hop-by-hop stripping, the
//! call id and start time, `X-Forwarded-*`, and Go-style canonical names for the queued
//! message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_proto::headers as names;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) use ferry_runtime::headers::{is_hop_by_hop, strip_hop_by_hop};

/// `X-Call-Id`.
pub(crate) const CALL_ID: HeaderName = HeaderName::from_static(names::CALL_ID);
/// `X-Start-Time`.
pub(crate) const START_TIME: HeaderName = HeaderName::from_static(names::START_TIME);
/// `X-Callback-Url`.
pub(crate) const CALLBACK_URL: HeaderName = HeaderName::from_static(names::CALLBACK_URL);
const FORWARDED_FOR: HeaderName = HeaderName::from_static(names::FORWARDED_FOR);
const FORWARDED_HOST: HeaderName = HeaderName::from_static(names::FORWARDED_HOST);

/// The caller's `X-Call-Id`, or a new UUID v4 (`generated` is then true).
pub(crate) fn call_id(headers: &HeaderMap) -> (HeaderValue, bool) {
    match headers.get(&CALL_ID) {
        Some(v) if !v.is_empty() => (v.clone(), false),
        _ => {
            let mut buf = uuid::Uuid::encode_buffer();
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            (
                HeaderValue::from_str(id).expect("a UUID is a valid header value"),
                true,
            )
        }
    }
}

/// Now, as Unix nanoseconds (the `X-Start-Time` value).
pub(crate) fn start_time() -> HeaderValue {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    HeaderValue::from(nanos)
}

/// Sets `X-Forwarded-For` (the client's `ip:port`) and `X-Forwarded-Host` (its `Host`),
/// each only if the request does not carry it already.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client: Option<SocketAddr>) {
    if !headers.contains_key(&FORWARDED_FOR) {
        if let Some(addr) = client {
            if let Ok(v) = HeaderValue::from_str(&addr.to_string()) {
                headers.insert(FORWARDED_FOR, v);
            }
        }
    }
    if !headers.contains_key(&FORWARDED_HOST) {
        if let Some(host) = headers.get(HOST).cloned() {
            headers.insert(FORWARDED_HOST, host);
        }
    }
}

/// A header name as Go's `http.CanonicalHeaderKey` writes it: `x-call-id` → `X-Call-Id`.
pub(crate) fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Headers as Go's `http.Header` (canonical name → values), as the queued message carries
/// them: hop-by-hop headers and `Host` (a field of its own) left out.
pub(crate) fn to_go_header(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in headers.keys() {
        if *name == HOST || is_hop_by_hop(name) {
            continue;
        }
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(canonical(name.as_str()), values);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_stripped() {
        let mut h = map(&[
            ("connection", "keep-alive, x-private, Upgrade"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-private", "secret"),
            ("authorization", "Bearer t"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["authorization", "content-type"]);
    }

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical("x-call-id"), "X-Call-Id");
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("etag"), "Etag");
        assert_eq!(canonical("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(canonical("a--b"), "A--B");
    }

    #[test]
    fn go_header_keeps_every_value_and_drops_host_and_hop_by_hop() {
        let h = map(&[
            ("host", "gateway:8080"),
            ("connection", "close"),
            ("x-tag", "a"),
            ("x-tag", "b"),
            ("x-call-id", "id-1"),
        ]);
        let go = to_go_header(&h);
        assert_eq!(go.len(), 2, "{go:?}");
        assert_eq!(go["X-Tag"], ["a", "b"]);
        assert_eq!(go["X-Call-Id"], ["id-1"]);
    }

    #[test]
    fn call_id_is_honoured_or_generated() {
        let (id, generated) = call_id(&map(&[("x-call-id", "mine")]));
        assert_eq!((id.to_str().unwrap(), generated), ("mine", false));
        let (id, generated) = call_id(&HeaderMap::new());
        assert!(generated);
        assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
        assert_ne!(id, call_id(&HeaderMap::new()).0);
    }

    #[test]
    fn forwarded_headers_are_added_only_when_absent() {
        let client: SocketAddr = "10.0.0.7:5123".parse().unwrap();
        let mut h = map(&[("host", "gw.example:8080")]);
        set_forwarded(&mut h, Some(client));
        assert_eq!(h[FORWARDED_FOR], "10.0.0.7:5123");
        assert_eq!(h[FORWARDED_HOST], "gw.example:8080");
        let mut h = map(&[
            ("host", "gw"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "edge"),
        ]);
        set_forwarded(&mut h, Some(client));
        assert_eq!(h[FORWARDED_FOR], "1.2.3.4");
        assert_eq!(h[FORWARDED_HOST], "edge");
    }

    #[test]
    fn start_time_is_unix_nanoseconds() {
        let v: u128 = start_time().to_str().unwrap().parse().unwrap();
        assert!(v > 1_600_000_000 * 1_000_000_000);
    }
}
