//! Hop-by-hop headers, removed by every ferry process that forwards a request or a response
//! (the gateway's proxy and async path, the queue-worker's calls and callbacks, the watchdog's
//! reverse proxy): the fixed list of [`ferry_proto::headers::HOP_BY_HOP`] and any header that
//! `Connection` names.

use http::header::CONNECTION;
use http::{HeaderMap, HeaderName};

/// [`ferry_proto::headers::HOP_BY_HOP`] as header names.
const HOP_BY_HOP: [HeaderName; 9] = {
    let h = ferry_proto::headers::HOP_BY_HOP;
    [
        HeaderName::from_static(h[0]),
        HeaderName::from_static(h[1]),
        HeaderName::from_static(h[2]),
        HeaderName::from_static(h[3]),
        HeaderName::from_static(h[4]),
        HeaderName::from_static(h[5]),
        HeaderName::from_static(h[6]),
        HeaderName::from_static(h[7]),
        HeaderName::from_static(h[8]),
    ]
};

/// Whether `name` is hop-by-hop by definition (not counting those named in `Connection`).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers: the standard ones and any that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(CONNECTION) {
        for token in value.to_str().unwrap_or_default().split(',') {
            let token = token.trim();
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_list_and_the_headers_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, X-Private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-call-id", "abc".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-call-id"], "abc");
        assert!(is_hop_by_hop(&HeaderName::from_static("upgrade")));
        assert!(!is_hop_by_hop(&HeaderName::from_static("x-call-id")));
    }
}
