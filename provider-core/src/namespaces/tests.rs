//! Unit tests of [`super`]: the rules and request parsing.

use super::*;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn labelled(n: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> FunctionNamespace {
    FunctionNamespace::labelled(n, labels, annotations)
}

#[test]
fn the_default_namespace_and_those_holding_functions_exist_implicitly() {
    let bare = |n: &str| labelled(n, &[("openfaas", "1")], &[]);
    assert_eq!(
        visible(&name("openfaas-fn"), None, false),
        Some(bare("openfaas-fn"))
    );
    assert_eq!(visible(&name("fns"), None, true), Some(bare("fns")));
    assert_eq!(visible(&name("fns"), None, false), None);
    let stored = labelled("dev", &[("openfaas", "1"), ("k", "v")], &[]);
    assert_eq!(
        visible(&name("dev"), Some(stored.clone()), false),
        Some(stored)
    );
    assert_eq!(
        names(
            vec!["dev".to_string()],
            vec!["zz".into(), "openfaas-fn".into(), "aa".into(), "dev".into()]
        ),
        ["openfaas-fn", "aa", "dev", "zz"]
    );
    for (n, stored, holds) in [("openfaas-fn", false, false), ("fns", false, true)] {
        assert!(matches!(
            check_create(&name(n), stored, holds),
            Err(ApiError::NamespaceExists(_))
        ));
    }
    assert!(check_create(&name("dev"), false, false).is_ok());
    assert!(matches!(
        check_update(&name("nope"), false, false),
        Err(ApiError::NamespaceNotFound(n)) if n == "nope"
    ));
    assert!(check_update(&name("fns"), false, true).is_ok());
}

#[test]
fn delete_refuses_the_default_namespace_and_one_in_use() {
    let refused = |n: &str, stored, functions: &[String], secrets: &[String]| match check_delete(
        &name(n),
        stored,
        functions,
        secrets,
    ) {
        Err(e @ ApiError::NamespaceInUse { .. }) => e.to_string(),
        other => panic!("{n}: {other:?}"),
    };
    let message = refused("openfaas-fn", false, &[], &[]);
    assert!(message.contains("default namespace"), "{message}");
    let message = refused("dev", true, &["echo".into(), "figlet".into()], &[]);
    assert!(
        message.contains("echo, figlet") && message.contains("remove them first"),
        "{message}"
    );
    let message = refused("dev", true, &[], &["db".into()]);
    assert!(message.contains("secrets db"), "{message}");
    refused("implicit", false, &["echo".into()], &[]);
    assert!(matches!(
        check_delete(&name("nope"), false, &[], &[]),
        Err(ApiError::NamespaceNotFound(_))
    ));
    assert!(check_delete(&name("dev"), true, &[], &[]).is_ok());
}

fn bad_request(path: Option<&str>, body: &str) -> String {
    match request(path, body.as_bytes()) {
        Err(ApiError::BadRequest(message)) => message,
        other => panic!("{path:?} {body}: {other:?}"),
    }
}

#[test]
fn requests_name_one_valid_namespace_and_carry_the_openfaas_label() {
    // faas-cli's create: name in the body, labels and annotations with openfaas=1.
    let body =
        r#"{"name":"dev","labels":{"openfaas":"1","team":"a"},"annotations":{"openfaas":"1"}}"#;
    let (n, ns) = request(None, body.as_bytes()).unwrap();
    assert_eq!(n, name("dev"));
    assert_eq!(
        ns,
        labelled(
            "dev",
            &[("openfaas", "1"), ("team", "a")],
            &[("openfaas", "1")]
        )
    );
    // The name may come from the path only; the label is added, faasd's "true" becomes "1".
    let (n, ns) = request(Some("dev"), br#"{"labels":{"openfaas":"true"}}"#).unwrap();
    assert_eq!(n, name("dev"));
    assert_eq!(ns, labelled("dev", &[("openfaas", "1")], &[]));
    let (_, ns) = request(Some("dev"), br#"{"name":"dev"}"#).unwrap();
    assert_eq!(ns.labels[OPENFAAS], "1");

    assert!(bad_request(None, "{").contains("malformed JSON"));
    assert!(bad_request(None, "").contains("body is empty"));
    assert!(bad_request(None, "{}").contains("\"name\" field is required"));
    assert!(bad_request(Some("dev"), r#"{"name":"prod"}"#).contains("does not match"));
    let message = bad_request(None, r#"{"name":"Dev_1"}"#);
    assert!(message.starts_with("invalid namespace name"), "{message}");
    assert!(bad_request(Some("a.b"), "{}").starts_with("invalid namespace name"));
    let message = bad_request(None, r#"{"name":"dev","labels":{"openfaas":"0"}}"#);
    assert!(message.contains("label openfaas"), "{message}");
}
