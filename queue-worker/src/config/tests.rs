use std::collections::HashMap;

use super::*;

fn from(pairs: &[(&str, &str)]) -> Result<Config, EnvError> {
    let env: HashMap<&str, &str> = pairs.iter().copied().collect();
    Config::from_env(&env)
}

#[test]
fn defaults() {
    let c = from(&[]).unwrap();
    assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
    assert_eq!(c.invoke.provider_url.to_string(), "http://127.0.0.1:8081");
    assert!(c.invoke.scale_from_zero && !c.auth.enabled);
    assert_eq!(c.max_call_duration, Duration::from_secs(24 * 3600));
    assert_eq!(c.max_deliveries, 10);
    assert_eq!(c.max_buffered_result, 1024 * 1024);
    assert_eq!(c.result_memory, 8 * 1024 * 1024);
    assert!(!c.retry.on_timeout);
    assert_eq!(c.queue_name, "faas-request");
    assert_eq!(c.max_inflight, 64);
    assert_eq!(c.ack_wait, Duration::from_secs(30));
    assert_eq!(c.max_ack_pending, 10_000);
    assert_eq!(c.upstream_timeout, Duration::from_secs(300));
    assert_eq!(c.callback_timeout, Duration::from_secs(10));
    assert_eq!(c.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.pull_expires, Duration::from_secs(2));
    assert_eq!(c.port, 8083);
    assert_eq!(c.retry.max_attempts, 10);
    assert_eq!(c.retry.codes, [408, 429, 500, 502, 503, 504]);
    assert_eq!(c.retry.backoff.min_wait, Duration::from_secs(1));
    assert_eq!(c.retry.backoff.max_wait, Duration::from_secs(60));
    assert_eq!(c.retry.max_age, Duration::ZERO);
    assert_eq!(c.max_inflight_per_function, 32);
    assert_eq!(c.callback_max_attempts, 8);
    assert_eq!(c.callback_backoff.min_wait, Duration::from_secs(1));
    assert_eq!(c.callback_backoff.max_wait, Duration::from_secs(60));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn values() {
    let c = from(&[
        ("nats_url", "nats://nats:4222"),
        ("functions_provider_url", "http://provider:8081/prefix"),
        ("max_call_duration", "3h"),
        ("max_deliveries", "3"),
        ("max_buffered_result", "64KiB"),
        ("result_memory", "2MiB"),
        ("retry_timed_out", "true"),
        ("queue_name", "slow_fns"),
        ("max_inflight", "4"),
        ("ack_wait", "5m5s"),
        ("max_ack_pending", "4"),
        ("upstream_timeout", "1h"),
        ("callback_timeout", "500ms"),
        ("shutdown_grace", "0"),
        ("pull_expires", "10s"),
        ("port", "9000"),
        ("max_retry_attempts", "3"),
        ("initial_retry_wait", "200ms"),
        ("max_retry_wait", "5s"),
        ("retry_http_codes", "503,429"),
        ("max_event_age", "1h"),
        ("max_inflight_per_function", "9"),
        ("callback_max_attempts", "2"),
        ("callback_initial_wait", "2s"),
    ])
    .unwrap();
    assert_eq!(c.nats.url, "nats://nats:4222");
    assert_eq!(
        c.invoke.provider_url.to_string(),
        "http://provider:8081/prefix"
    );
    assert_eq!(c.max_call_duration, Duration::from_secs(3 * 3600));
    assert_eq!((c.max_deliveries, c.max_buffered_result), (3, 64 * 1024));
    assert_eq!(c.result_memory, 2 * 1024 * 1024);
    assert!(c.retry.on_timeout);
    assert_eq!((c.queue_name.as_str(), c.max_inflight), ("slow_fns", 4));
    assert_eq!(c.ack_wait, Duration::from_secs(305));
    assert_eq!(c.max_ack_pending, 4);
    assert_eq!(c.upstream_timeout, Duration::from_secs(3600));
    assert_eq!(c.callback_timeout, Duration::from_millis(500));
    assert_eq!(c.shutdown_grace, Duration::ZERO);
    assert_eq!((c.pull_expires, c.port), (Duration::from_secs(10), 9000));
    assert_eq!(
        (c.retry.max_attempts, c.retry.codes.as_slice()),
        (3, &[429, 503][..])
    );
    assert_eq!(c.retry.backoff.min_wait, Duration::from_millis(200));
    assert_eq!(c.retry.backoff.max_wait, Duration::from_secs(5));
    assert_eq!(c.retry.max_age, Duration::from_secs(3600));
    // Never more than max_inflight.
    assert_eq!(c.max_inflight_per_function, 4);
    assert_eq!(c.callback_max_attempts, 2);
    assert_eq!(c.callback_backoff.min_wait, Duration::from_secs(2));
    assert_eq!(c.callback_backoff.max_wait, Duration::from_secs(60));
}

#[test]
fn the_per_function_cap_follows_max_inflight() {
    assert_eq!(
        from(&[("max_inflight", "1")])
            .unwrap()
            .max_inflight_per_function,
        1
    );
    assert_eq!(
        from(&[("max_inflight", "5")])
            .unwrap()
            .max_inflight_per_function,
        2
    );
    // A maximum wait below a raised initial wait follows it.
    let c = from(&[("initial_retry_wait", "2m")]).unwrap();
    assert_eq!(c.retry.backoff.max_wait, Duration::from_secs(120));
}

#[test]
fn errors_name_the_variable() {
    for (name, value) in [
        ("functions_provider_url", "provider:8081"),
        ("functions_provider_url", "https://provider"),
        ("max_call_duration", "0"),
        ("max_deliveries", "0"),
        ("max_buffered_result", "12"),
        ("result_memory", "lots"),
        ("queue_name", "a.b"),
        ("queue_name", "slow>"),
        ("max_inflight", "0"),
        ("max_inflight", "many"),
        ("max_ack_pending", "10"),
        ("ack_wait", "500ms"),
        ("ack_wait", "soon"),
        ("upstream_timeout", "0"),
        ("callback_timeout", "0s"),
        ("pull_expires", "2m"),
        ("pull_expires", "1ms"),
        ("port", "99999"),
        ("nats_stream_replicas", "three"),
        ("max_retry_attempts", "0"),
        ("max_retry_attempts", "1000"),
        ("retry_http_codes", "5xx"),
        ("initial_retry_wait", "0"),
        ("max_retry_wait", "500ms"),
        ("max_event_age", "old"),
        ("max_inflight_per_function", "0"),
        ("callback_max_attempts", "none"),
        ("callback_max_wait", "10ms"),
    ] {
        let err = from(&[(name, value)]).map(|_| ()).unwrap_err();
        assert_eq!(err.name, name, "{name}={value}: {err}");
    }
}

#[test]
fn validate_rejects_hand_built_nonsense() {
    let mut c = from(&[]).unwrap();
    c.max_ack_pending = 1;
    assert!(c.validate().is_err());
    let mut c = from(&[]).unwrap();
    c.queue_name = "a b".into();
    assert!(c.validate().is_err());
    let mut c = from(&[]).unwrap();
    c.ack_wait = Duration::from_millis(10);
    assert!(c.validate().is_err());
    let mut c = from(&[]).unwrap();
    c.retry.max_attempts = 0;
    assert!(c.validate().is_err());
    let mut c = from(&[]).unwrap();
    c.callback_backoff.max_wait = Duration::from_millis(1);
    assert!(c.validate().is_err());
}

#[test]
fn callback_destinations() {
    let c = from(&[]).unwrap();
    assert_eq!(c.callback_guard, CallbackGuard::default());
    assert!(c.callback_guard.check_host("127.0.0.1").is_ok());
    assert!(c.callback_guard.check_host("169.254.169.254").is_err());
    let c = from(&[
        ("callback_deny", "127.0.0.0/8,*.internal"),
        ("callback_allow", "hooks.internal"),
    ])
    .unwrap();
    assert!(c.callback_guard.check_host("127.0.0.1").is_err());
    assert!(c.callback_guard.check_host("db.internal").is_err());
    assert!(c.callback_guard.check_host("hooks.internal").is_ok());
    for name in ["callback_deny", "callback_allow"] {
        let err = from(&[(name, "10.0.0.0/99")]).unwrap_err();
        assert_eq!(err.name, name, "{err}");
    }
}

#[test]
fn the_readme_table_lists_every_setting_with_its_default() {
    let readme = include_str!("../../../README.md");
    ferry_runtime::settings::readme::assert_agrees::<Settings>(readme, "queue-worker");
}
