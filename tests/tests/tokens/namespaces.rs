//! Tokens limited to namespaces: a token of `openfaas-fn` cannot act in `dev` however the
//! request names it (`?namespace=`, the body's `namespace`, a `name.dev` suffix, the three
//! mixed, a parameter given twice), and what the provider holds afterwards shows nothing was
//! done there. A token of `dev` or of both works in `dev`, one of `*` everywhere.

use serde_json::json;

use crate::common::{Auth, FN, Stack, message, stack};

/// Sends `method path` with `body` as `auth`; asserts the status; the answer.
async fn expect(
    s: &Stack,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: &str,
    want: u16,
) -> String {
    let body = (!body.is_empty()).then_some(body);
    let (status, answer) = s.send(method, path, auth, body).await;
    assert_eq!(status, want, "{auth:?} {method} {path} {body:?}: {answer}");
    answer
}

/// The tokens of the test.
struct Tokens {
    /// `deploy` in openfaas-fn.
    deploy: String,
    /// `invoke` in openfaas-fn.
    invoke: String,
    /// `read` in dev.
    read_dev: String,
    /// `deploy` and `invoke` in both.
    both: String,
    /// `read` everywhere.
    all: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_only_in_its_namespaces() {
    let guarded = json!({"com.ferry.auth": "required"});
    let s = stack(&[
        json!({"service": "echo"}),
        json!({"service": "echo", "namespace": "dev"}),
        json!({"service": "guarded", "namespace": "dev", "labels": guarded}),
    ])
    .await;
    let t = Tokens {
        deploy: s.token("deploy-fn", &["deploy"], &[FN]).await,
        invoke: s.token("invoke-fn", &["invoke"], &[FN]).await,
        read_dev: s.token("read-dev", &["read"], &["dev"]).await,
        both: s.token("both", &["deploy", "invoke"], &[FN, "dev"]).await,
        all: s.token("read-all", &["read"], &["*"]).await,
    };
    reads(&s, &t).await;
    writes(&s, &t).await;
    calls(&s, &t).await;
}

/// Reads of dev, however dev is named.
async fn reads(s: &Stack, t: &Tokens) {
    let d = Auth::Bearer(&t.deploy);
    let tokens = [d, Auth::Bearer(&t.both), Auth::Bearer(&t.all)];
    // The token of openfaas-fn, the token of both namespaces, the token of all.
    let reads: &[(&str, [u16; 3])] = &[
        ("/system/functions?namespace=dev", [403, 200, 200]),
        ("/system/function/echo.dev", [403, 200, 200]),
        ("/system/function/echo?namespace=dev", [403, 200, 200]),
        ("/system/function/echo?name%73pace=dev", [403, 200, 200]),
        ("/system/function/echo?namespace=%64ev", [403, 200, 200]),
        ("/system/logs?name=echo.dev&tail=1", [403, 200, 200]),
        (
            "/system/logs?name=echo&namespace=dev&tail=1",
            [403, 200, 200],
        ),
        ("/system/namespace/dev", [403, 200, 200]),
        ("/system/dead-letters?namespace=dev", [403, 200, 200]),
        ("/system/dead-letters?function=echo.dev", [403, 200, 200]),
        // Secrets are deploy's, not read's; every namespace at once needs a `*` token.
        ("/system/secrets?namespace=dev", [403, 200, 403]),
        ("/system/dead-letters", [403, 403, 200]),
    ];
    for (path, expected) in reads {
        for (auth, want) in tokens.iter().zip(expected) {
            let answer = expect(s, *auth, "GET", path, "", *want).await;
            if *want == 403 {
                assert!(message(&answer).starts_with("forbidden"), "{answer}");
            }
        }
    }
    let r = Auth::Bearer(&t.read_dev);
    expect(s, r, "GET", "/system/function/echo.dev", "", 200).await;
    expect(s, r, "GET", "/system/function/echo", "", 403).await;
    // Mixed or repeated: refused, never resolved in the token's favour.
    for (path, want) in [
        ("/system/function/echo.openfaas-fn?namespace=dev", 400),
        ("/system/functions?namespace=openfaas-fn&namespace=dev", 400),
        ("/system/functions?namespace=dev&namespace=openfaas-fn", 400),
        ("/system/function/echo", 200),
    ] {
        expect(s, d, "GET", path, "", want).await;
    }
}

/// Writes into dev, by body, query or suffix; nothing happens there.
async fn writes(s: &Stack, t: &Tokens) {
    let d = Auth::Bearer(&t.deploy);
    let image = &s.image.tag;
    let into_dev = json!({"service": "made", "image": image, "namespace": "dev"}).to_string();
    let plain = json!({"service": "made", "image": image}).to_string();
    let twice = format!(
        r#"{{"service":"made","image":"{image}","namespace":"openfaas-fn","namespace":"dev"}}"#
    );
    let update =
        json!({"service": "echo", "image": image, "namespace": "dev", "envVars": {"X": "1"}})
            .to_string();
    let delete_dev = json!({"functionName": "echo", "namespace": "dev"}).to_string();
    let delete = json!({"functionName": "echo"}).to_string();
    // `echo.dev` with no namespace is what the provider refuses too (`400`).
    let suffixed = json!({"functionName": "echo.dev"}).to_string();
    let scale = json!({"serviceName": "echo", "replicas": 0}).to_string();
    let scale_dev = json!({"serviceName": "echo", "replicas": 0, "namespace": "dev"}).to_string();
    let secret_dev = json!({"name": "key", "value": "v", "namespace": "dev"}).to_string();
    let secret = json!({"name": "key", "value": "v"}).to_string();
    let steps: &[(&str, &str, &str, u16)] = &[
        ("POST", "/system/functions", &into_dev, 403),
        ("POST", "/system/functions?namespace=dev", &plain, 403),
        ("POST", "/system/functions", &twice, 400),
        ("PUT", "/system/functions", &update, 403),
        ("DELETE", "/system/functions", &delete_dev, 403),
        ("DELETE", "/system/functions?namespace=dev", &delete, 403),
        ("DELETE", "/system/functions", &suffixed, 400),
        ("POST", "/system/scale-function/echo.dev", &scale, 403),
        (
            "POST",
            "/system/scale-function/echo?namespace=dev",
            &scale,
            403,
        ),
        ("POST", "/system/scale-function/echo", &scale_dev, 403),
        ("POST", "/system/secrets", &secret_dev, 403),
        ("POST", "/system/secrets?namespace=dev", &secret, 403),
        ("DELETE", "/system/secrets?name=key&namespace=dev", "", 403),
    ];
    for (method, path, body, want) in steps {
        expect(s, d, method, path, body, *want).await;
    }
    let dev = s
        .provider
        .status("echo.dev")
        .await
        .expect("echo.dev is there");
    assert_eq!((dev.replicas, dev.env_vars.get("X")), (1, None));
    assert!(s.provider.status("made.dev").await.is_none());
    assert!(s.provider.status("made").await.is_none());
    let (_, secrets) = s
        .provider
        .call("GET", "/system/secrets?namespace=dev", None)
        .await;
    assert_eq!(secrets, json!([]));
    // The same in its own namespace works; and in dev for a token of both.
    expect(s, d, "POST", "/system/secrets", &secret, 201).await;
    let both = Auth::Bearer(&t.both);
    expect(s, both, "POST", "/system/secrets", &secret_dev, 201).await;
}

/// A labelled function of dev, and dev's async calls.
async fn calls(s: &Stack, t: &Tokens) {
    let (i, d) = (Auth::Bearer(&t.invoke), Auth::Bearer(&t.deploy));
    expect(s, i, "POST", "/function/guarded.dev", "x", 403).await;
    expect(s, i, "POST", "/async-function/guarded.dev", "x", 403).await;
    let both = Auth::Bearer(&t.both);
    expect(s, both, "POST", "/function/guarded.dev", "x", 200).await;
    let call = s.submit("echo.dev").await;
    let status = format!("/system/async-calls/{call}");
    expect(s, d, "GET", &status, "", 403).await;
    expect(s, i, "DELETE", &status, "", 403).await;
    expect(s, Auth::Bearer(&t.read_dev), "GET", &status, "", 200).await;
    let record = expect(s, Auth::Basic, "GET", &status, "", 200).await;
    assert!(
        record.contains("\"state\":\"queued\""),
        "not cancelled: {record}"
    );
}
