//! The namespaces a request names: in the query, the body, the function name, all of them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use http::Method;

use super::{Target, namespaces};
use crate::limits::BodyLimit;

fn m(s: &str) -> Method {
    Method::from_bytes(s.as_bytes()).unwrap()
}

/// The namespaces a request names (`["*"]`: every namespace), or the status it is refused
/// with.
type Found = Result<Vec<String>, u16>;

/// What `namespaces` finds for `target` in `method uri` with `body`.
async fn target(target: Target<'_>, method: &str, uri: &str, body: &str) -> Found {
    let request = Request::builder()
        .method(m(method))
        .uri(uri)
        .body(Body::from(body.to_string()))
        .unwrap();
    let limit = BodyLimit::new(1024, "max_request_body", Duration::from_secs(5));
    match namespaces(target, request, limit).await {
        Ok((found, request)) => {
            let left = axum::body::to_bytes(request.into_body(), 2048)
                .await
                .unwrap();
            assert_eq!(left, body.as_bytes(), "the body is passed on");
            Ok(found.map_or_else(
                || vec!["*".to_string()],
                |f| f.iter().map(|n| n.to_string()).collect(),
            ))
        }
        Err(e) => Err(e.status().as_u16()),
    }
}

#[tokio::test]
async fn requests_name_their_namespaces_everywhere() {
    use Target as T;
    let ok = |list: &[&str]| Ok(list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let fn_ns = "openfaas-fn";
    let cases: Vec<(Target<'_>, &str, &str, &str, Found)> = vec![
        (T::None, "GET", "/system/info?namespace=dev", "", ok(&[])),
        (T::Query, "GET", "/system/functions", "", ok(&[fn_ns])),
        (
            T::Query,
            "GET",
            "/system/functions?namespace=dev",
            "",
            ok(&["dev"]),
        ),
        (
            T::Query,
            "GET",
            "/system/functions?namespace=",
            "",
            ok(&[fn_ns]),
        ),
        (
            T::Query,
            "GET",
            "/system/functions?name%73pace=dev",
            "",
            ok(&["dev"]),
        ),
        (
            T::Query,
            "GET",
            "/system/functions?namespace=a&namespace=dev",
            "",
            Err(400),
        ),
        (
            T::Query,
            "GET",
            "/system/functions?namespace=+dev",
            "",
            Err(400),
        ),
        (T::Function("echo.dev"), "GET", "/", "", ok(&["dev"])),
        (
            T::Function("echo"),
            "GET",
            "/?namespace=dev",
            "",
            ok(&["dev", "dev"]),
        ),
        (
            T::Function("echo.dev"),
            "GET",
            "/?namespace=prod",
            "",
            Err(400),
        ),
        (T::Namespace("dev"), "GET", "/", "", ok(&["dev"])),
        (T::Namespace("Dev"), "GET", "/", "", Err(400)),
        (
            T::Logs,
            "GET",
            "/system/logs?name=echo.dev",
            "",
            ok(&["dev"]),
        ),
        (
            T::Logs,
            "GET",
            "/system/logs?name=echo&namespace=dev",
            "",
            ok(&["dev", "dev"]),
        ),
        (T::Logs, "GET", "/system/logs", "", Err(400)),
        (
            T::FunctionFilter,
            "GET",
            "/?function=echo.dev",
            "",
            ok(&["dev"]),
        ),
        (
            T::FunctionFilter,
            "GET",
            "/?function=echo&namespace=dev",
            "",
            ok(&["dev"]),
        ),
        (
            T::FunctionFilter,
            "GET",
            "/?namespace=dev",
            "",
            ok(&["dev"]),
        ),
        (T::FunctionFilter, "GET", "/?limit=5", "", ok(&["*"])),
        (
            T::Deployment,
            "POST",
            "/",
            r#"{"service":"e","image":"i"}"#,
            ok(&[fn_ns]),
        ),
        (
            T::Deployment,
            "POST",
            "/?namespace=prod",
            r#"{"service":"e","image":"i","namespace":"dev"}"#,
            ok(&["dev", "prod", "dev"]),
        ),
        (
            T::Deployment,
            "PUT",
            "/",
            r#"{"service":"e.dev","image":"i"}"#,
            Err(400),
        ),
        (
            T::Deployment,
            "POST",
            "/",
            r#"{"service":"e","namespace":"dev","namespace":"x"}"#,
            Err(400),
        ),
        (T::Deployment, "POST", "/", "not json", Err(400)),
        (T::Deployment, "POST", "/", "", Err(400)),
        (
            T::DeleteFunction,
            "DELETE",
            "/",
            r#"{"functionName":"e","namespace":"dev"}"#,
            ok(&["dev", "dev"]),
        ),
        (
            T::DeleteFunction,
            "DELETE",
            "/?namespace=dev",
            r#"{"functionName":"e"}"#,
            ok(&["dev", "dev"]),
        ),
        (
            T::DeleteFunction,
            "DELETE",
            "/",
            r#"{"functionName":"e.dev"}"#,
            Err(400),
        ),
        (
            T::Scale("e.dev"),
            "POST",
            "/",
            r#"{"replicas":1}"#,
            ok(&["dev"]),
        ),
        (
            T::Scale("e"),
            "POST",
            "/",
            r#"{"replicas":1,"namespace":"dev"}"#,
            ok(&["dev", "dev"]),
        ),
        (
            T::Scale("e"),
            "POST",
            "/?namespace=prod",
            r#"{"namespace":"dev"}"#,
            ok(&["prod", "prod", "dev"]),
        ),
        (
            T::Secret,
            "POST",
            "/",
            r#"{"name":"s","value":"v","namespace":"dev"}"#,
            ok(&["dev", "dev"]),
        ),
        (
            T::Secret,
            "DELETE",
            "/?name=s&namespace=dev",
            "",
            ok(&["dev", "dev"]),
        ),
        (T::Secret, "DELETE", "/?name=s", " ", ok(&[fn_ns])),
        (
            T::Secret,
            "POST",
            "/",
            r#"{"name":"s","value":"hunter2""#,
            Err(400),
        ),
    ];
    for (t, method, uri, body, want) in cases {
        assert_eq!(
            target(t, method, uri, body).await,
            want,
            "{t:?} {method} {uri} {body}"
        );
    }
    // A body over max_request_body is refused before it is read.
    let big = format!(r#"{{"service":"e","image":"{}"}}"#, "i".repeat(2000));
    assert_eq!(target(T::Deployment, "POST", "/", &big).await, Err(413));
    // The refusal never quotes a secret's value.
    let request = Request::builder()
        .uri("/")
        .body(Body::from(r#"{"name":"s","value":"hunter2"#))
        .unwrap();
    let limit = BodyLimit::new(1024, "max_request_body", Duration::from_secs(5));
    let error = namespaces(T::Secret, request, limit).await.unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
