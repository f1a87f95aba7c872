//! The namespace API checks every backend passes: create with labels and annotations (201,
//! again 409), get, list, update (202; unknown 404), delete refused for the default
//! namespace and one holding a secret (409), then done (202) and gone (404).

use serde_json::{Value, json};

use crate::provider::TestProvider;

async fn call(p: &TestProvider, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    p.call(method, path, body.as_deref()).await
}

/// The namespace checks, on namespace `suite-ns`.
pub async fn namespaces(p: &TestProvider) {
    let (ns, path) = ("suite-ns", "/system/namespace/suite-ns");
    let create = json!({"name": ns, "labels": {"team": "a"}, "annotations": {"owner": "x"}});
    assert_eq!(
        call(p, "POST", "/system/namespace/", Some(create.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        call(p, "POST", "/system/namespace/", Some(create)).await.0,
        409
    );
    let (code, got) = call(p, "GET", path, None).await;
    assert_eq!(code, 200);
    let want = json!({"name": ns, "labels": {"team": "a", "openfaas": "1"}, "annotations": {"owner": "x"}});
    assert_eq!(got, want);
    let (code, names) = call(p, "GET", "/system/namespaces", None).await;
    assert_eq!(code, 200);
    assert_eq!(names[0], "openfaas-fn", "{names}");
    assert!(
        names.as_array().is_some_and(|n| n.contains(&json!(ns))),
        "{names}"
    );

    // Update replaces labels and annotations; an unknown namespace is a 404.
    let update = json!({"name": ns, "labels": {"team": "b"}});
    assert_eq!(call(p, "PUT", path, Some(update.clone())).await.0, 202);
    let (_, got) = call(p, "GET", path, None).await;
    let want = json!({"name": ns, "labels": {"team": "b", "openfaas": "1"}, "annotations": {}});
    assert_eq!(got, want);
    let unknown = json!({"name": "suite-none"});
    let code = call(p, "PUT", "/system/namespace/suite-none", Some(unknown))
        .await
        .0;
    assert_eq!(code, 404);

    // Delete: never the default namespace, nor one holding a secret.
    assert_eq!(
        call(p, "DELETE", "/system/namespace/openfaas-fn", None)
            .await
            .0,
        409
    );
    let secret = json!({"name": "suite-key", "namespace": ns, "value": "v"});
    assert_eq!(
        call(p, "POST", "/system/secrets", Some(secret)).await.0,
        201
    );
    let (code, body) = call(p, "DELETE", path, None).await;
    assert_eq!(code, 409, "{body}");
    let secrets = format!("/system/secrets?namespace={ns}");
    assert_eq!(
        call(p, "GET", &secrets, None).await.1[0]["name"],
        "suite-key"
    );
    let delete_secret = format!("/system/secrets?namespace={ns}&name=suite-key");
    assert_eq!(call(p, "DELETE", &delete_secret, None).await.0, 200);
    assert_eq!(
        call(p, "DELETE", path, Some(json!({"name": ns}))).await.0,
        202
    );
    assert_eq!(call(p, "GET", path, None).await.0, 404);
    assert_eq!(call(p, "DELETE", path, None).await.0, 404);
    let (_, names) = call(p, "GET", "/system/namespaces", None).await;
    assert_eq!(names, json!(["openfaas-fn"]));
}
