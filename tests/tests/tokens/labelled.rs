//! `com.ferry.auth=required`: such a function answers only callers with `invoke` in its
//! namespace (or the admin): `401` without credentials or with an unknown token, `403` with a
//! token of another scope or namespace, `200` with the right one, sync and async alike; a
//! function without the label stays open to everyone, its own `Authorization` headers passed
//! through. Ferry credentials never reach a function, nor the queue.

use ferry_proto::QueueRequest;
use ferry_tests::gateway::{calls_and_statuses, messages_of};
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};

use crate::common::{Auth, FN, message, stack};

/// The `Authorization` headers the echo function saw (from its JSON answer).
fn seen_authorization(answer: &str) -> Vec<String> {
    let echo: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    echo["headers"]["authorization"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_functions_need_an_invoke_token_and_others_stay_open() {
    let s = stack(&[
        json!({"service": "guarded", "labels": {"com.ferry.auth": "required"}}),
        json!({"service": "annotated", "annotations": {"com.ferry.auth": "required"}}),
        json!({"service": "open"}),
    ])
    .await;
    let invoke = s.token("caller", &["invoke"], &[FN]).await;
    let invoke_dev = s.token("caller-dev", &["invoke"], &["dev"]).await;
    let read = s.token("reader", &["read"], &[FN]).await;
    let bogus = format!("ferry_{}", "y".repeat(40));

    for function in ["guarded", "annotated"] {
        for prefix in ["/function/", "/async-function/"] {
            let path = format!("{prefix}{function}");
            let (status, headers, body) = s.exchange("POST", &path, Auth::None, Some("x")).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(message(&body).contains("requires an API token"), "{body}");
            let challenges: Vec<_> = headers.get_all(WWW_AUTHENTICATE).iter().collect();
            assert_eq!(
                challenges,
                ["Basic realm=\"Restricted\"", "Bearer realm=\"Restricted\""]
            );
            for (auth, want) in [
                (Auth::Bearer(&bogus), 401),
                (Auth::Bearer(&read), 403),
                (Auth::Bearer(&invoke_dev), 403),
            ] {
                let (status, body) = s.send("POST", &path, auth, Some("x")).await;
                assert_eq!(status, want, "{path} {auth:?}: {body}");
            }
        }
    }

    // The right token and the admin get through; the function never sees ferry credentials.
    for auth in [Auth::Bearer(&invoke), Auth::Basic] {
        let (status, body) = s
            .send("POST", "/function/guarded/x", auth, Some("hi"))
            .await;
        assert_eq!(status, 200, "{auth:?}: {body}");
        assert_eq!(seen_authorization(&body), Vec::<String>::new(), "{auth:?}");
    }
    // Nor does the queue keep them.
    calls_and_statuses(&s.nats).await;
    let (status, headers, body) = s
        .exchange(
            "POST",
            "/async-function/guarded",
            Auth::Bearer(&invoke),
            Some("hi"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let call = headers["x-call-id"].to_str().unwrap();
    let js = async_nats::jetstream::new(s.nats.connect().await);
    let calls = js
        .get_stream("ferry-calls")
        .await
        .expect("the calls stream");
    let queued = messages_of(&calls, call).await;
    let request: QueueRequest = serde_json::from_slice(&queued[0].payload).unwrap();
    assert!(
        request
            .header
            .keys()
            .all(|k| !k.eq_ignore_ascii_case("authorization")),
        "{:?}",
        request.header
    );
    assert!(!String::from_utf8_lossy(&queued[0].payload).contains(&invoke));

    // Unlabelled: open, whatever the header says; a function's own credentials pass through.
    for auth in [Auth::None, Auth::Bearer(&bogus), Auth::Bearer(&read)] {
        let (status, body) = s.send("POST", "/function/open", auth, Some("hi")).await;
        assert_eq!(status, 200, "{auth:?}: {body}");
        let (status, body) = s
            .send("POST", "/async-function/open", auth, Some("hi"))
            .await;
        assert_eq!(status, 202, "{auth:?}: {body}");
    }
    let (_, body) = s
        .send("POST", "/function/open", Auth::Bearer("its-own"), None)
        .await;
    assert_eq!(seen_authorization(&body), ["Bearer its-own"]);
    let (_, body) = s
        .send("POST", "/function/open", Auth::Bearer(&bogus), None)
        .await;
    assert_eq!(seen_authorization(&body), [format!("Bearer {bogus}")]);
    // A known token is the caller's ferry credential, not the function's: taken off.
    let (_, body) = s
        .send("POST", "/function/open", Auth::Bearer(&read), None)
        .await;
    assert_eq!(seen_authorization(&body), Vec::<String>::new());
}
