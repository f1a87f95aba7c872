//! Attempts to get past the token checks, written byte for byte: dot segments, percent
//! encodings, doubled slashes and another case in paths; the `Authorization` header in any
//! case, twice, with two credentials in one, and tokens where no token is read; namespaces
//! given twice or encoded. Every one is refused or lands on no route, and nothing listing
//! functions or tokens comes back.

use serde_json::json;

use std::net::SocketAddr;

use crate::common::{Auth, FN, Stack, raw, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_header_tricks_get_nowhere() {
    let s = stack(&[json!({"service": "echo", "labels": {"com.ferry.auth": "required"}})]).await;
    let read = s.token("reader", &["read"], &[FN]).await;
    let deploy = s.token("deployer", &["deploy"], &[FN]).await;
    let addr = s.gateway.addr();
    paths(addr, &read).await;
    headers(addr, &read, &s.admin.header_value()).await;
    namespaces(&s, &deploy).await;
}

/// Dot segments, encodings, doubled slashes, case: no route is reached with less than its
/// rule.
async fn paths(addr: SocketAddr, read: &str) {
    let bearer = format!("Authorization: Bearer {read}");
    // (request line, extra header, statuses allowed)
    let none = "";
    let cases: &[(&str, &str, &[u16])] = &[
        ("GET /function/../system/functions HTTP/1.1", none, &[404]),
        (
            "GET /function/%2e%2e/system/functions HTTP/1.1",
            none,
            &[404],
        ),
        (
            "GET /function/..%2Fsystem%2Ffunctions HTTP/1.1",
            none,
            &[404],
        ),
        (
            "GET /async-function/../system/tokens HTTP/1.1",
            none,
            &[404],
        ),
        ("GET /system/../system/tokens HTTP/1.1", none, &[401]),
        ("GET /system/../system/tokens HTTP/1.1", &bearer, &[403]),
        ("GET /system/%2e%2e/system/tokens HTTP/1.1", &bearer, &[403]),
        ("GET /system/functions/../tokens HTTP/1.1", &bearer, &[403]),
        (
            "GET /system/functions%2F..%2Ftokens HTTP/1.1",
            &bearer,
            &[403],
        ),
        ("GET /system/./tokens HTTP/1.1", &bearer, &[403]),
        ("GET /system//tokens HTTP/1.1", &bearer, &[403]),
        ("GET /system/tokens/ HTTP/1.1", &bearer, &[403]),
        ("GET /system/tokens%2F HTTP/1.1", &bearer, &[403]),
        ("GET /system%2Ftokens HTTP/1.1", &bearer, &[404]),
        ("GET //system/functions HTTP/1.1", none, &[400, 404]),
        ("GET //system/tokens HTTP/1.1", &bearer, &[400, 404]),
        ("GET /System/functions HTTP/1.1", none, &[404]),
        ("GET /SYSTEM/TOKENS HTTP/1.1", &bearer, &[404]),
        ("GET /system/Tokens HTTP/1.1", &bearer, &[403]),
        ("GET /system/endpoints/echo HTTP/1.1", &bearer, &[403]),
        ("GET http://gateway/system/tokens HTTP/1.1", &bearer, &[403]),
        ("GET /function/echo HTTP/1.1", none, &[401]),
        (
            "GET /function/echo/../../system/functions HTTP/1.1",
            none,
            &[401],
        ),
        ("GET /function/ECHO HTTP/1.1", none, &[404]),
        ("GET /function/echo%2Eopenfaas-fn HTTP/1.1", none, &[404]),
        ("GET /function/echo.openfaas-fn HTTP/1.1", none, &[401]),
    ];
    for (line, header, allowed) in cases {
        let request = if header.is_empty() {
            line.to_string()
        } else {
            format!("{line}\r\n{header}")
        };
        let (status, body) = raw(addr, &request).await;
        assert!(
            allowed.contains(&status),
            "{line} [{header}]: {status} {body}"
        );
        assert!(
            !body.contains("\"image\"") && !body.contains("createdAt"),
            "{line}: {body}"
        );
    }
}

/// The `Authorization` header in any case, twice, with two credentials, or missing.
async fn headers(addr: SocketAddr, read: &str, basic: &str) {
    let bearer = format!("Authorization: Bearer {read}");
    // Any case of the name and the scheme works for a good token...
    for header in [
        format!("authorization: Bearer {read}"),
        format!("AUTHORIZATION: bearer {read}"),
        format!("Authorization: BEARER {read}"),
    ] {
        let (status, body) =
            raw(addr, &format!("GET /system/functions HTTP/1.1\r\n{header}")).await;
        assert_eq!(status, 200, "{header}: {body}");
        let (status, _) = raw(addr, &format!("GET /system/tokens HTTP/1.1\r\n{header}")).await;
        assert_eq!(status, 403, "{header}");
    }
    // ...and nothing else does.
    let refused = [
        format!("{bearer}\r\nAuthorization: {basic}"),
        format!("Authorization: {basic}\r\n{bearer}"),
        format!("{bearer}\r\nauthorization: Bearer {read}"),
        format!("Authorization: Bearer {read}, {basic}"),
        format!("Authorization: {basic}, Bearer {read}"),
        format!("Authorization: Bearer {read}x"),
        format!("Authorization: Bearer{read}"),
        format!("Authorization: Token {read}"),
        format!("X-Authorization: {basic}"),
        format!("Authorization: Basic {}", read),
    ];
    for header in &refused {
        for path in ["/system/tokens", "/system/functions", "/function/echo"] {
            let (status, body) = raw(addr, &format!("GET {path} HTTP/1.1\r\n{header}")).await;
            assert_eq!(status, 401, "{path} [{header}]: {body}");
        }
    }
    for path in [
        format!("/system/functions?token={read}"),
        format!("/system/functions?access_token={read}"),
        format!("/function/echo?access_token={read}"),
    ] {
        let (status, body) = raw(addr, &format!("GET {path} HTTP/1.1")).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
}

/// Namespaces given twice or encoded: refused for a token of openfaas-fn.
async fn namespaces(s: &Stack, deploy: &str) {
    let d = Auth::Bearer(deploy);
    let image = s.image.tag.clone();
    for (method, path, body, want) in [
        (
            "GET",
            "/system/functions?namespace=openfaas-fn&namespace=dev",
            None,
            400,
        ),
        (
            "GET",
            "/system/functions?namespace=dev&namespace=openfaas-fn",
            None,
            400,
        ),
        ("GET", "/system/functions?name%73pace=dev", None, 403),
        ("GET", "/system/functions?namespace=%64ev", None, 403),
        ("GET", "/system/functions?namespace=dev%00", None, 400),
        (
            "POST",
            "/system/functions",
            Some(format!(
                r#"{{"service":"x","image":"{image}","namespace":"openfaas-fn","namespace":"dev"}}"#
            )),
            400,
        ),
        (
            "POST",
            "/system/functions",
            Some(format!(
                r#"{{"service":"x","image":"{image}","Namespace":"dev"}}"#
            )),
            202,
        ),
    ] {
        let (status, answer) = s.send(method, path, d, body.as_deref()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {answer}");
    }
    // The provider read `"Namespace"` as nothing, as the gateway did: `x` is in openfaas-fn.
    s.provider.wait_available("x", 1).await;
    assert!(s.provider.status("x.dev").await.is_none());
}
