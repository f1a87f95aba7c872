//! Unit tests of configuration parsing and command splitting.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

fn invalid(e: ConfigError) -> EnvError {
    match e {
        ConfigError::Invalid(e) => e,
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

#[test]
fn defaults_match_of_watchdog() {
    let c = Config::from_env(&env(&[("fprocess", "cat")])).unwrap();
    assert_eq!(c.command, ["cat"]);
    assert_eq!(c.mode, Mode::Streaming);
    assert_eq!(c.upstream_url, None);
    assert_eq!(c.read_timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(c.write_timeout, DEFAULT_TIMEOUT);
    assert_eq!(c.exec_timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(c.healthcheck_interval, DEFAULT_TIMEOUT);
    assert_eq!(c.port, 8080);
    assert_eq!(c.metrics_port, 8081);
    assert_eq!(c.max_inflight, 0);
    assert_eq!(c.content_type, "application/octet-stream");
    assert!(!c.suppress_lock && c.prefix_logs && !c.buffer_request_body && !c.log_callid);
    assert_eq!(c.ready_path, None);
    assert!(c.lock_path.ends_with(".lock"));
    assert!(c.combine_output && c.cgi_headers && !c.write_debug);
}

#[test]
fn classic_mode_has_the_classic_watchdogs_defaults() {
    let c = Config::from_env(&env(&[("fprocess", "cat"), ("mode", "classic")])).unwrap();
    assert_eq!(c.mode, Mode::Classic);
    assert_eq!(c.mode.as_str(), "classic");
    assert_eq!(c.exec_timeout, None, "no hard timeout by default");
    assert_eq!(c.read_timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(c.write_timeout, DEFAULT_TIMEOUT);
    assert_eq!(c.healthcheck_interval, DEFAULT_TIMEOUT);
    assert_eq!(c.port, 8080);
    assert_eq!(c.content_type, "", "unset: mirror the request or sniff");
    assert!(c.combine_output && c.cgi_headers && !c.write_debug && !c.suppress_lock);

    let c = Config::from_env(&env(&[
        ("fprocess", "cat"),
        ("mode", "Classic"),
        ("exec_timeout", "5s"),
        ("content_type", "text/plain"),
        ("combine_output", "false"),
        ("cgi_headers", "false"),
        ("write_debug", "true"),
        ("marshal_request", "false"),
        ("max_inflight", "2"),
    ]))
    .unwrap();
    assert_eq!(c.exec_timeout, Some(Duration::from_secs(5)));
    assert_eq!(c.content_type, "text/plain");
    assert!(!c.combine_output && !c.cgi_headers && c.write_debug);
    assert_eq!(c.max_inflight, 2);
}

#[test]
fn marshal_request_is_refused_in_classic_mode_only() {
    let err = invalid(
        Config::from_env(&env(&[
            ("fprocess", "cat"),
            ("mode", "classic"),
            ("marshal_request", "true"),
        ]))
        .unwrap_err(),
    );
    assert_eq!(err.name, "marshal_request");
    assert!(err.reason.contains("not supported"), "{err}");
    // of-watchdog has no such setting: the other modes ignore it.
    Config::from_env(&env(&[("fprocess", "cat"), ("marshal_request", "true")])).unwrap();
}

#[test]
fn reads_every_variable_and_aliases() {
    let c = Config::from_env(&env(&[
        ("function_process", "node index.js"),
        ("mode", "HTTP"),
        ("http_upstream_url", "http://localhost:3000/"),
        ("read_timeout", "5"),
        ("write_timeout", "1m"),
        ("exec_timeout", "0"),
        ("port", "9090"),
        ("max_inflight", "4"),
        ("content_type", "text/plain"),
        ("suppress_lock", "true"),
        ("ready_path", "ready"),
        ("prefix_logs", "false"),
        ("buffer_http", "true"),
        ("log_callid", "1"),
        ("metrics_port", "0"),
    ]))
    .unwrap();
    assert_eq!(c.metrics_port, 0);
    assert_eq!(c.command, ["node", "index.js"]);
    assert_eq!(c.mode, Mode::Http);
    assert_eq!(
        c.upstream_url.unwrap().to_string(),
        "http://127.0.0.1:3000/"
    );
    assert_eq!(c.read_timeout, Some(Duration::from_secs(5)));
    assert_eq!(c.write_timeout, Duration::from_secs(60));
    assert_eq!(c.exec_timeout, None);
    assert_eq!(
        c.healthcheck_interval,
        Duration::from_secs(60),
        "follows write_timeout"
    );
    assert_eq!((c.port, c.max_inflight), (9090, 4));
    assert_eq!(c.content_type, "text/plain");
    assert_eq!(c.ready_path.as_deref(), Some("/ready"));
    assert!(c.suppress_lock && !c.prefix_logs && c.buffer_request_body && c.log_callid);

    let c = Config::from_env(&env(&[
        ("fprocess", "x"),
        ("upstream_url", "http://10.0.0.1:5000/base/"),
        ("http_buffer_req_body", "false"),
        ("healthcheck_interval", "2s"),
    ]))
    .unwrap();
    assert_eq!(
        c.upstream_url.unwrap().to_string(),
        "http://10.0.0.1:5000/base"
    );
    assert!(!c.buffer_request_body);
    assert_eq!(c.healthcheck_interval, Duration::from_secs(2));
}

#[test]
fn missing_variables_are_named() {
    let e = Config::from_env(&env(&[])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("fprocess (or function_process) is required"),
        "{e}"
    );
    let e = Config::from_env(&env(&[("fprocess", "x"), ("mode", "http")])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("upstream_url (or http_upstream_url) is required")
    );
}

#[test]
fn invalid_values_name_the_variable() {
    let cases = [
        (
            "mode",
            "batch",
            "expected one of http, streaming, serializing, classic",
        ),
        ("mode", "static", "not supported"),
        ("write_timeout", "0", "must be greater than 0"),
        ("exec_timeout", "soon", "invalid duration"),
        ("port", "99999", ""),
        ("metrics_port", "8080", "must differ from port"),
        ("max_inflight", "-1", ""),
        ("suppress_lock", "maybe", "expected true or false"),
        ("combine_output", "maybe", "expected true or false"),
        ("cgi_headers", "2", "expected true or false"),
        ("upstream_url", "https://x:1", "scheme"),
        ("upstream_url", "127.0.0.1:5000", "absolute URL"),
        ("fprocess", "sh -c 'oops", "unterminated single quote"),
    ];
    for (name, value, reason) in cases {
        let mut e = env(&[("fprocess", "cat")]);
        e.insert(name, value);
        let err = invalid(Config::from_env(&e).unwrap_err());
        assert_eq!(err.name, name, "{value}");
        assert!(err.reason.contains(reason), "{name}={value}: {err}");
    }
}

#[test]
fn splits_commands_like_a_simple_shell() {
    let ok = |s: &str, want: &[&str]| assert_eq!(split_command(s).unwrap(), want, "{s}");
    ok("cat", &["cat"]);
    ok("  node   index.js \t", &["node", "index.js"]);
    ok(
        "sh -c 'echo \"$Http_Method\" | cat'",
        &["sh", "-c", "echo \"$Http_Method\" | cat"],
    );
    ok(
        r#"python3 -c "print('hi')""#,
        &["python3", "-c", "print('hi')"],
    );
    ok(
        r#"echo "a \"quoted\" \\ \n""#,
        &["echo", r#"a "quoted" \ \n"#],
    );
    ok("a'b c'd e", &["ab cd", "e"]);
    ok("printf '' x", &["printf", "", "x"]);
    assert!(split_command("   ").unwrap_err().contains("empty"));
    assert!(
        split_command("echo \"x")
            .unwrap_err()
            .contains("double quote")
    );
}

#[test]
fn the_readme_table_lists_every_setting_with_its_default() {
    let readme = include_str!("../../../README.md");
    ferry_runtime::settings::readme::assert_agrees::<Settings>(readme, "watchdog");
}
