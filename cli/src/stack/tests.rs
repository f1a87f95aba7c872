//! Stack files from the corpus in `tests/fixtures/stacks/`: anchors and merge keys, variable
//! substitution, environment files, and bad files whose errors name the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::args::Selection;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stacks")
        .join(name)
}

fn env(name: &str) -> Option<String> {
    match name {
        "TEAM" => Some("core".into()),
        "TAG" => Some("v2".into()),
        _ => None,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The error message of loading fixture `name`.
fn error(name: &str) -> String {
    match load(&fixture(name), &env) {
        Err(Error::Stack { message, .. }) => message,
        other => panic!("{name}: expected a stack error, got {other:?}"),
    }
}

#[test]
fn anchors_merge_keys_substitution_and_env_files() {
    let loaded = load(&fixture("anchors.yml"), &env).unwrap();
    let stack = &loaded.stack;
    assert_eq!(stack.version.as_deref(), Some("1.0"));
    let provider = stack.provider.as_ref().unwrap();
    assert_eq!(provider.gateway.as_deref(), Some("http://127.0.0.1:8080"));

    let first = &stack.functions["first"];
    assert_eq!(
        first.lang.as_deref(),
        Some("shell"),
        "merged from x-defaults"
    );
    assert_eq!(first.image.as_deref(), Some("ferry/first:v2"));
    assert_eq!(
        first.labels,
        map(&[("com.openfaas.scale.min", "1"), ("team", "core")])
    );
    assert_eq!(
        first.limits.as_ref().unwrap().memory.as_deref(),
        Some("64M")
    );
    assert_eq!(
        first.environment,
        map(&[("DEBUG", "true"), ("PORT", "8080"), ("RATIO", "1.50")]),
        "scalars are read as written"
    );

    let second = &stack.functions["second"];
    assert_eq!(second.lang.as_deref(), Some("rust"), "a key beside << wins");
    assert_eq!(
        second.labels,
        map(&[
            ("com.openfaas.scale.min", "1"),
            ("extra", "yes"),
            ("team", "core")
        ])
    );
    assert_eq!(
        second.environment,
        map(&[
            ("DEBUG", "true"),
            ("FROM_FILE", "second"),
            ("PORT", "9000"),
            ("RATIO", "1.50")
        ]),
        "files win over environment, later files over earlier ones"
    );
    assert_eq!(second.secrets, ["api-key"]);
    assert!(second.readonly_root_filesystem);
    assert_eq!(second.namespace.as_deref(), Some("dev"));
    assert_eq!(second.build_args, map(&[("MODE", "release")]));
    assert_eq!(
        second.requests.as_ref().unwrap().cpu.as_deref(),
        Some("100m")
    );
}

#[test]
fn the_deployment_carries_every_setting() {
    let loaded = load(&fixture("anchors.yml"), &env).unwrap();
    let args = crate::args::DeployArgs {
        selection: Selection::default(),
        image: None,
        name: None,
        namespace: None,
        fprocess: None,
        env: vec!["PORT=1".into()],
        labels: vec![],
        annotations: vec!["a=b".into()],
        secrets: vec!["more".into()],
        no_wait: true,
        timeout: "1s".into(),
    };
    let d =
        crate::commands::deployment("second", &loaded.stack.functions["second"], &args).unwrap();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "service": "second",
            "image": "second:latest",
            "namespace": "dev",
            "envProcess": "/usr/bin/handler --flag",
            "envVars": {"DEBUG": "true", "FROM_FILE": "second", "PORT": "1", "RATIO": "1.50"},
            "secrets": ["api-key", "more"],
            "labels": {"com.openfaas.scale.min": "1", "extra": "yes", "team": "core"},
            "annotations": {"a": "b", "com.openfaas.queue": "slow"},
            "limits": {"memory": "64M"},
            "requests": {"cpu": "100m"},
            "readOnlyRootFilesystem": true
        })
    );
}

#[test]
fn filter_and_regex_select_functions() {
    let loaded = load(&fixture("anchors.yml"), &env).unwrap();
    let names = |selection: Selection| -> Vec<String> {
        loaded
            .select(&selection)
            .map(|v| v.into_iter().map(|(n, _)| n.to_owned()).collect())
            .unwrap_or_default()
    };
    let glob = |g: &str| Selection {
        filter: Some(g.into()),
        regex: None,
    };
    let re = |r: &str| Selection {
        filter: None,
        regex: Some(r.into()),
    };
    assert_eq!(names(Selection::default()), ["first", "second"]);
    assert_eq!(names(glob("f*")), ["first"]);
    assert_eq!(names(glob("*con?")), ["second"]);
    assert_eq!(names(re("^(first|second)$")), ["first", "second"]);
    assert_eq!(names(re("nd$")), ["second"]);
    assert!(matches!(
        loaded.select(&glob("none*")),
        Err(Error::Usage(_))
    ));
    let both = Selection {
        filter: Some("*".into()),
        regex: Some(".".into()),
    };
    assert!(matches!(loaded.select(&both), Err(Error::Usage(_))));
}

#[test]
fn wildcards() {
    for (pattern, name, want) in [
        ("*", "", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("*b*", "abc", true),
        ("abc", "abcd", false),
    ] {
        assert_eq!(wildcard(pattern, name), want, "{pattern} {name}");
    }
}

#[test]
fn bad_files_name_the_line() {
    let cases = [
        ("unknown-function-key.yml", "line 8", "enviroment"),
        ("unknown-top-key.yml", "line 4", "functoins"),
        ("bad-limits.yml", "line 6", "disk"),
        ("bad-yaml.yml", "line 4", ""),
        ("unterminated.yml", "line 3", "unterminated"),
    ];
    for (file, line, word) in cases {
        let message = error(file);
        assert!(message.contains(line), "{file}: {message}");
        assert!(message.contains(word), "{file}: {message}");
    }
}

#[test]
fn bad_values_are_explained() {
    assert!(error("bad-provider.yml").contains("provider.name \"faas\""));
    assert!(error("bad-name.yml").contains("Hello_World"));
    assert!(error("bad-env-file.yml").contains("env/missing.yml"));
}
