use std::collections::HashMap;

use super::*;

#[derive(Debug, clap::Args)]
#[group(skip)]
struct Sample {
    /// A count.
    #[arg(long = "count", env = "count", alias = "old_count", default_value = "3",
          value_parser = number::<u32>)]
    count: u32,
    /// A timeout.
    #[arg(long = "timeout", env = "timeout", default_value = "5s",
          value_parser = positive_duration)]
    timeout: Duration,
    /// A URL.
    #[arg(long = "target_url", env = "target_url", value_parser = url)]
    target_url: Option<String>,
    /// A switch.
    #[arg(long = "on", env = "on", default_value = "false", action = clap::ArgAction::Set,
          value_parser = boolean)]
    on: bool,
}

fn url(v: &str) -> Result<String, String> {
    match v.starts_with("http://") {
        true => Ok(v.to_string()),
        false => Err("expected http://".into()),
    }
}

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn defaults_values_and_blank_variables() {
    let s: Sample = from_env(&env(&[("timeout", "  "), ("on", "")])).unwrap();
    assert_eq!(
        (s.count, s.timeout, s.on),
        (3, Duration::from_secs(5), false)
    );
    assert_eq!(s.target_url, None);
    let s: Sample = from_env(&env(&[
        ("count", " 7 "),
        ("on", "Yes"),
        ("timeout", "1m5s"),
    ]))
    .unwrap();
    assert_eq!(
        (s.count, s.timeout, s.on),
        (7, Duration::from_secs(65), true)
    );
}

#[test]
fn an_alias_is_an_older_name_of_the_variable() {
    let s: Sample = from_env(&env(&[("old_count", "9")])).unwrap();
    assert_eq!(s.count, 9);
    let s: Sample = from_env(&env(&[("old_count", "9"), ("count", "4")])).unwrap();
    assert_eq!(s.count, 4, "the current name first");
    let err = from_env::<Sample>(&env(&[("old_count", "nine")])).unwrap_err();
    assert_eq!(
        (err.name.as_str(), err.value.as_str()),
        ("old_count", "nine")
    );
}

#[test]
fn errors_name_the_variable_and_hide_credentials() {
    let err = from_env::<Sample>(&env(&[("timeout", "0")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "timeout=\"0\" is not valid: must be greater than zero"
    );
    let err = from_env::<Sample>(&env(&[("target_url", "ftp://u:secret@h")])).unwrap_err();
    assert_eq!(err.name, "target_url");
    assert!(!err.value.contains("secret"), "{err}");
}

#[test]
fn flags_win_over_variables() {
    let e = env(&[("count", "4")]);
    let s: Sample = parse("t", &e, ["--count=5"]).unwrap();
    assert_eq!(s.count, 5);
    let s: Sample = parse("t", &e, ["--timeout", "2s"]).unwrap();
    assert_eq!((s.count, s.timeout), (4, Duration::from_secs(2)));
    match parse::<Sample>("t", &e, ["--what"]) {
        Err(SettingsError::Usage(message)) => assert!(message.contains("--what"), "{message}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn help_lists_variables_and_defaults_but_no_values() {
    let text = help::<Sample>("t", "about t", "after t");
    for part in [
        "about t",
        "--count",
        "[env: count",
        "[default: 3]",
        "--target_url",
        "after t",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
}
