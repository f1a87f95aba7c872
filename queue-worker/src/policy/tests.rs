use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::HeaderValue;

use super::*;

fn defaults() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        codes: DEFAULT_RETRY_CODES.to_vec(),
        backoff: Backoff {
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        },
        max_age: Duration::ZERO,
        on_timeout: false,
    }
}

fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> FunctionResponse {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    FunctionResponse::ready(StatusCode::from_u16(status).unwrap(), map, Bytes::new())
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn delays_double_from_min_wait_up_to_max_wait() {
    let b = defaults().backoff;
    let top: Vec<u64> = (1..=9).map(|n| b.delay(n, 1.0).as_secs()).collect();
    assert_eq!(top, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    // Equal jitter: half of the full delay at the least, never below min_wait.
    assert_eq!(b.delay(4, 0.0), Duration::from_secs(4));
    assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
    assert_eq!(b.delay(2, 0.5), Duration::from_millis(1500));
    assert_eq!(b.delay(1000, 1.0), Duration::from_secs(60));
    for n in 1..40 {
        let d = b.random_delay(n);
        assert!(d >= b.min_wait && d <= b.max_wait, "{n}: {d:?}");
    }
}

#[test]
fn retryable_failures() {
    let p = defaults();
    for status in [408, 429, 500, 502, 503, 504] {
        assert!(p.is_retryable(&Ok(answer(status, &[]))), "{status}");
    }
    for status in [200, 201, 302, 400, 404, 501] {
        assert!(!p.is_retryable(&Ok(answer(status, &[]))), "{status}");
    }
    // Platform errors are retried whatever their status; a 2xx never is.
    assert!(p.is_retryable(&Ok(answer(404, &[("x-openfaas-internal", "proxy")]))));
    assert!(!p.is_retryable(&Ok(answer(200, &[("x-openfaas-internal", "proxy")]))));
    // Unreachable is retried; running out of time only when the policy says so; a function
    // that no longer exists never.
    assert!(p.is_retryable(&Err(WorkerError::Unreachable(
        crate::error::Unreachable::BrokeOff("refused".into())
    ))));
    let timeout = || Err(WorkerError::Timeout(Duration::from_secs(1)));
    assert!(!p.is_retryable(&timeout()));
    let (p2, warnings) = p.for_function(&annotations(&[("com.openfaas.retry.on_timeout", "true")]));
    assert!(warnings.is_empty() && p2.is_retryable(&timeout()));
    let gone = ferry_invoke::InvokeError::FunctionNotFound("f".into());
    assert!(!p.is_retryable(&Err(WorkerError::Invoke(gone))));
}

#[test]
fn retry_after_in_seconds_or_as_a_date() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let r = |status, value: &'static str| {
        let a = answer(status, &[("retry-after", value)]);
        retry_after(a.status, &a.headers, now)
    };
    assert_eq!(r(429, "2"), Some(Duration::from_secs(2)));
    assert_eq!(r(503, " 120 "), Some(Duration::from_secs(120)));
    assert_eq!(
        r(503, "Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        r(429, "Sun, 06 Nov 1994 08:00:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(r(500, "2"), None, "only 429 and 503");
    assert_eq!(r(429, "soon"), None);
    assert_eq!(r(429, "99999999"), Some(MAX_RETRY_AFTER));
}

#[test]
fn retry_after_replaces_the_backoff_within_bounds() {
    let p = defaults();
    let now = SystemTime::now();
    let with = |value: &'static str| Ok(answer(429, &[("retry-after", value)]));
    assert_eq!(
        p.retry_delay(1, &with("2"), now),
        Duration::from_secs(2),
        "honoured"
    );
    assert_eq!(
        p.retry_delay(1, &with("0"), now),
        Duration::from_secs(1),
        "floored at min_wait"
    );
    assert_eq!(
        p.retry_delay(1, &with("600"), now),
        Duration::from_secs(600),
        "honoured above max_wait"
    );
    let plain = p.retry_delay(3, &Ok(answer(500, &[])), now);
    assert!(plain >= Duration::from_secs(2) && plain <= Duration::from_secs(4));
}

#[test]
fn annotations_override_the_defaults() {
    let (p, warnings) = defaults().for_function(&annotations(&[
        ("com.openfaas.retry.attempts", "3"),
        ("com.openfaas.retry.codes", "429, 503,503"),
        ("com.openfaas.retry.min_wait", "200ms"),
        ("com.openfaas.retry.max_wait", "5s"),
        ("com.openfaas.retry.max_age", "1h"),
        ("com.openfaas.queue", "slow"),
    ]));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.max_attempts, 3);
    assert_eq!(p.codes, [429, 503]);
    assert_eq!(p.backoff.min_wait, Duration::from_millis(200));
    assert_eq!(p.backoff.max_wait, Duration::from_secs(5));
    assert_eq!(p.max_age, Duration::from_secs(3600));
    assert_eq!(defaults().for_function(&BTreeMap::new()).0, defaults());
}

#[test]
fn invalid_annotations_fall_back_with_a_warning_naming_them() {
    let (p, warnings) = defaults().for_function(&annotations(&[
        ("com.openfaas.retry.attempts", "0"),
        ("com.openfaas.retry.codes", "5xx"),
        ("com.openfaas.retry.min_wait", "soon"),
        ("com.openfaas.retry.max_wait", "0s"),
        ("com.openfaas.retry.max_age", "-1"),
    ]));
    assert_eq!(p, defaults());
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    for (w, key) in warnings
        .iter()
        .zip(["attempts", "codes", "min_wait", "max_wait", "max_age"])
    {
        assert!(w.contains(&format!("com.openfaas.retry.{key}")), "{w}");
    }
    // A max_wait below min_wait is raised to it.
    let (p, warnings) =
        defaults().for_function(&annotations(&[("com.openfaas.retry.min_wait", "2m")]));
    assert_eq!(p.backoff.max_wait, Duration::from_secs(120));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn parsers() {
    assert_eq!(parse_attempts("1"), Ok(1));
    assert!(parse_attempts("101").is_err() && parse_attempts("x").is_err());
    assert_eq!(parse_codes("504,408"), Ok(vec![408, 504]));
    assert!(parse_codes("").is_err() && parse_codes("600").is_err());
    assert_eq!(parse_wait("1"), Ok(Duration::from_secs(1)));
    assert!(parse_wait("0").is_err());
}
