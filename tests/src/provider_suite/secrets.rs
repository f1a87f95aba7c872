//! The secrets checks every backend passes: create (201, again 409), list without values, a
//! function reading the secret at `/var/openfaas/secrets/<name>`, an update the function sees
//! (provider-docker at once, the file rewritten in place; provider-swarm once Swarm has rolled
//! the service onto the new secret version), delete refused while the function names it
//! (409) and done once it is gone (200).

use std::time::Duration;

use serde_json::{Value, json};

use super::Reach;
use crate::provider::{TestProvider, ready_addresses};
use crate::wait_until;

const MINUTE: Duration = Duration::from_secs(60);
const VALUE_1: &str = "suite-s3cr3t-one";
const VALUE_2: &str = "suite-s3cr3t-two";

/// Sends a request; its status and JSON body, after checking that no value appears in it.
async fn call(p: &TestProvider, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (code, answer) = p.call(method, path, body.as_deref()).await;
    let text = answer.to_string();
    assert!(
        !text.contains(VALUE_1) && !text.contains(VALUE_2),
        "{method} {path} answered with a secret value: {text}"
    );
    (code, answer)
}

/// Whether every ready replica of `function` (and at least one) reads `value` as `secret`.
async fn all_read(
    p: &TestProvider,
    reach: &Reach,
    function: &str,
    secret: &str,
    value: &str,
) -> bool {
    let addresses = ready_addresses(p, function).await;
    let mut all = !addresses.is_empty();
    for a in &addresses {
        let read = reach.get(a, &format!("/_/secret/{secret}")).await;
        all &= read.is_some_and(|(code, body)| code == 200 && body == value.as_bytes());
    }
    all
}

/// The secrets checks, with the echo function `image` reading them.
pub async fn secrets(p: &TestProvider, reach: &Reach, image: &str) {
    let (secret, function) = ("suite-db", "suite-reader");
    let create = json!({"name": secret, "value": VALUE_1});
    assert_eq!(
        call(p, "POST", "/system/secrets", Some(create.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        call(p, "POST", "/system/secrets", Some(create)).await.0,
        409
    );
    let (code, list) = call(p, "GET", "/system/secrets", None).await;
    assert_eq!(code, 200);
    assert_eq!(list, json!([{"name": secret, "namespace": "openfaas-fn"}]));

    let unknown = json!({"service": function, "image": image, "secrets": ["suite-nope"]});
    let (code, body) = call(p, "POST", "/system/functions", Some(unknown)).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["message"], "unable to find secret: suite-nope");
    let deployment = json!({"service": function, "image": image, "secrets": [secret]});
    assert_eq!(
        call(p, "POST", "/system/functions", Some(deployment))
            .await
            .0,
        202
    );
    p.wait_available(function, 1).await;
    wait_until("the function reads the secret", MINUTE, || {
        all_read(p, reach, function, secret, VALUE_1)
    })
    .await;

    // Update: the function sees the new value; an unknown secret is a 404.
    let update = json!({"name": secret, "value": VALUE_2});
    assert_eq!(call(p, "PUT", "/system/secrets", Some(update)).await.0, 200);
    let unknown = json!({"name": "suite-nope", "value": VALUE_2});
    assert_eq!(
        call(p, "PUT", "/system/secrets", Some(unknown)).await.0,
        404
    );
    wait_until("the function reads the new value", MINUTE, || {
        all_read(p, reach, function, secret, VALUE_2)
    })
    .await;

    // Delete: refused while the function names it, done once the function is gone.
    let delete = json!({"name": secret});
    let (code, body) = call(p, "DELETE", "/system/secrets", Some(delete.clone())).await;
    assert_eq!(code, 409, "{body}");
    let remove = json!({"functionName": function});
    assert_eq!(
        call(p, "DELETE", "/system/functions", Some(remove)).await.0,
        202
    );
    let (code, body) = call(p, "DELETE", "/system/secrets", Some(delete.clone())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        call(p, "DELETE", "/system/secrets", Some(delete)).await.0,
        404
    );
    assert_eq!(call(p, "GET", "/system/secrets", None).await.1, json!([]));
}
