//! Unit tests of [`super`]: the namespace store (request parsing and the rules are
//! tested in `ferry-provider-core`).

use std::os::unix::fs::PermissionsExt;

use ferry_provider_core::ApiError;

use super::*;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn labelled(n: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> FunctionNamespace {
    FunctionNamespace::labelled(n, labels, annotations)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn created_namespaces_survive_reopening_in_private_files() {
    let data = tempfile::tempdir().unwrap();
    let namespaces = Namespaces::open(data.path()).unwrap();
    let dev = labelled(
        "dev",
        &[("openfaas", "1"), ("team", "a")],
        &[("owner", "x")],
    );
    namespaces.create(&name("dev"), dev.clone(), false).unwrap();
    assert!(matches!(
        namespaces.create(&name("dev"), dev.clone(), false),
        Err(ProviderError::Api(ApiError::NamespaceExists(n))) if n == "dev"
    ));
    let staging = labelled("staging", &[("openfaas", "1")], &[]);
    namespaces
        .create(&name("staging"), staging.clone(), false)
        .unwrap();
    let changed = labelled("dev", &[("openfaas", "1"), ("team", "b")], &[]);
    namespaces
        .update(&name("dev"), changed.clone(), false)
        .unwrap();

    assert_eq!(mode(&data.path().join("namespaces")), 0o700);
    assert_eq!(mode(&data.path().join("namespaces/dev.json")), 0o600);
    let reopened = Namespaces::open(data.path()).unwrap();
    assert_eq!(reopened.get(&name("dev"), false), Some(changed));
    assert_eq!(reopened.get(&name("staging"), false), Some(staging));
    assert_eq!(
        reopened.names(Vec::new()),
        ["openfaas-fn", "dev", "staging"]
    );

    reopened.delete(&name("staging"), &[], &[]).unwrap();
    let again = Namespaces::open(data.path()).unwrap();
    assert_eq!(again.get(&name("staging"), false), None);
    assert_eq!(again.names(Vec::new()), ["openfaas-fn", "dev"]);
}

#[test]
fn unreadable_or_misnamed_files_are_skipped() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("namespaces");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.json"), b"{").unwrap();
    std::fs::write(dir.join("other.json"), br#"{"name":"dev"}"#).unwrap();
    std::fs::write(dir.join("Bad.json"), br#"{"name":"Bad"}"#).unwrap();
    std::fs::write(dir.join(".ok.json.tmp"), br#"{"name":"ok"}"#).unwrap();
    std::fs::write(dir.join("ok.json"), br#"{"name":"ok","labels":null}"#).unwrap();
    let namespaces = Namespaces::open(data.path()).unwrap();
    assert_eq!(namespaces.names(Vec::new()), ["openfaas-fn", "ok"]);
}

#[test]
fn the_default_namespace_and_those_holding_functions_exist_implicitly() {
    let data = tempfile::tempdir().unwrap();
    let namespaces = Namespaces::open(data.path()).unwrap();
    let bare = |n: &str| labelled(n, &[("openfaas", "1")], &[]);
    assert_eq!(
        namespaces.get(&name("openfaas-fn"), false),
        Some(bare("openfaas-fn"))
    );
    assert_eq!(namespaces.get(&name("fns"), true), Some(bare("fns")));
    assert_eq!(namespaces.get(&name("fns"), false), None);
    assert_eq!(
        namespaces.names(vec!["zz".into(), "openfaas-fn".into(), "aa".into()]),
        ["openfaas-fn", "aa", "zz"]
    );

    for (n, holds) in [("openfaas-fn", false), ("fns", true)] {
        assert!(matches!(
            namespaces.create(&name(n), bare(n), holds),
            Err(ProviderError::Api(ApiError::NamespaceExists(_)))
        ));
    }
    assert!(matches!(
        namespaces.update(&name("nope"), bare("nope"), false),
        Err(ProviderError::Api(ApiError::NamespaceNotFound(n))) if n == "nope"
    ));
    // Updated, an implicit namespace is kept after its functions go.
    let labelled_fns = labelled("fns", &[("openfaas", "1"), ("k", "v")], &[]);
    namespaces
        .update(&name("fns"), labelled_fns.clone(), true)
        .unwrap();
    assert_eq!(namespaces.get(&name("fns"), false), Some(labelled_fns));
}

#[test]
fn delete_refuses_the_default_namespace_and_one_in_use() {
    let data = tempfile::tempdir().unwrap();
    let namespaces = Namespaces::open(data.path()).unwrap();
    let dev = labelled("dev", &[("openfaas", "1")], &[]);
    namespaces.create(&name("dev"), dev, false).unwrap();
    let refused = |n: &str, functions: &[String], secrets: &[String]| match namespaces.delete(
        &name(n),
        functions,
        secrets,
    ) {
        Err(e @ ProviderError::Api(ApiError::NamespaceInUse { .. })) => e.to_string(),
        other => panic!("{n}: {other:?}"),
    };
    let message = refused("openfaas-fn", &[], &[]);
    assert!(message.contains("default namespace"), "{message}");
    let message = refused("dev", &["echo".into(), "figlet".into()], &[]);
    assert!(
        message.contains("echo, figlet") && message.contains("remove them first"),
        "{message}"
    );
    let message = refused("dev", &[], &["db".into()]);
    assert!(message.contains("secrets db"), "{message}");
    // An implicit namespace holding functions is in use too; one holding nothing is unknown.
    refused("implicit", &["echo".into()], &[]);
    assert!(matches!(
        namespaces.delete(&name("nope"), &[], &[]),
        Err(ProviderError::Api(ApiError::NamespaceNotFound(_)))
    ));

    namespaces.delete(&name("dev"), &[], &[]).unwrap();
    assert!(!data.path().join("namespaces/dev.json").exists());
    assert!(matches!(
        namespaces.delete(&name("dev"), &[], &[]),
        Err(ProviderError::Api(ApiError::NamespaceNotFound(_)))
    ));
}
