use super::*;

fn job(state: CallState, attempts: u32) -> CallbackJob {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("x-custom", HeaderValue::from_static("kept"));
    headers.insert("content-length", HeaderValue::from_static("5"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    headers.insert("connection", HeaderValue::from_static("close"));
    headers.insert("x-duration-seconds", HeaderValue::from_static("0.1"));
    CallbackJob {
        call_id: "c-1".into(),
        url: "http://127.0.0.1:9/cb".into(),
        function: "figlet.dev".into(),
        queue: "faas-request".into(),
        state,
        result: call_result(201, &headers, &Bytes::from_static(b"hello")),
        duration_seconds: 2.5,
        attempts,
        attempt_history: Vec::new(),
        max_attempts: 10,
        callback_attempts: 0,
        submitted_unix_ms: 0,
        request: QueueRequest::default(),
    }
}

#[test]
fn durations_have_six_decimals() {
    assert_eq!(duration_seconds(Duration::ZERO), "0.000000");
    assert_eq!(duration_seconds(Duration::from_millis(1250)), "1.250000");
    assert_eq!(duration_seconds(Duration::from_nanos(1_500)), "0.000002");
    assert_eq!(duration_seconds(Duration::from_secs(3600)), "3600.000000");
}

#[test]
fn callback_urls() {
    assert!(callback_url("http://127.0.0.1:9000/cb?x=1").is_ok());
    assert!(callback_url("https://hooks.example.com/cb").is_ok());
    for bad in ["/relative", "ftp://h/x", "http://", ""] {
        assert!(
            matches!(callback_url(bad), Err(WorkerError::CallbackUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn headers_carry_the_function_response_and_the_call_headers() {
    let h = callback_headers(&job(CallState::Succeeded, 3));
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "content-type",
            "x-call-id",
            "x-call-state",
            "x-custom",
            "x-duration-seconds",
            "x-function-name",
            "x-function-status",
            "x-retry",
            "x-retry-max",
        ]
    );
    assert_eq!(h["x-call-id"], "c-1");
    assert_eq!(h["x-function-name"], "figlet.dev");
    assert_eq!(h["x-function-status"], "201");
    assert_eq!(h["x-duration-seconds"], "2.500000");
    assert_eq!(h["x-retry"], "2");
    assert_eq!(h["x-retry-max"], "9");
    assert_eq!(h["x-call-state"], "succeeded");

    let h = callback_headers(&job(CallState::Expired, 0));
    assert_eq!(h["x-retry"], "0");
    assert_eq!(h["x-call-state"], "expired");
}

#[test]
fn jobs_round_trip_as_json() {
    let j = job(CallState::DeadLettered, 3);
    let json = serde_json::to_value(&j).unwrap();
    assert_eq!(json["state"], "dead_lettered");
    assert_eq!(json["result"]["status"], 201);
    assert_eq!(json["result"]["headers"]["x-custom"][0], "kept");
    assert_eq!(json["result"]["body"], "aGVsbG8=");
    let back: CallbackJob = serde_json::from_value(json).unwrap();
    assert_eq!(back, j);
}

#[tokio::test]
async fn an_unusable_url_fails_for_good() {
    let mut j = job(CallState::Succeeded, 1);
    j.url = "not a url".into();
    ferry_runtime::tls::install();
    let client = CallbackClient::new(Default::default(), 1).unwrap();
    let d = deliver(&client, &j, None, Duration::from_secs(1)).await;
    assert!(
        matches!(
            d,
            Delivery::Failed {
                permanent: true,
                ..
            }
        ),
        "{d:?}"
    );
}

#[test]
fn a_functions_own_signature_headers_are_dropped() {
    let mut headers = HeaderMap::new();
    headers.insert("x-ferry-signature", HeaderValue::from_static("v1=forged"));
    headers.insert("x-ferry-timestamp", HeaderValue::from_static("1"));
    let mut j = job(CallState::Succeeded, 1);
    j.result = call_result(200, &headers, &Bytes::new());
    let h = callback_headers(&j);
    assert!(h.get("x-ferry-signature").is_none() && h.get("x-ferry-timestamp").is_none());
}

#[tokio::test]
async fn a_refused_destination_fails_for_good_without_a_connection() {
    ferry_runtime::tls::install();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let guard = ferry_runtime::callback_guard::CallbackGuard::new("", "127.0.0.0/8, ::1").unwrap();
    let client = CallbackClient::new(guard, 1).unwrap();
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        (&format!("http://127.0.0.1:{port}/cb"), "callback_deny"),
        (&format!("http://localhost:{port}/cb"), "callback_deny"),
    ] {
        let mut j = job(CallState::Succeeded, 1);
        j.url = url.to_string();
        let d = deliver(&client, &j, None, Duration::from_secs(5)).await;
        match d {
            Delivery::Failed {
                status: None,
                error,
                permanent: true,
            } => assert!(
                error.contains("refused") && error.contains(why),
                "{url}: {error}"
            ),
            other => panic!("{url}: {other:?}"),
        }
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a connection was made");
}
