//! The scope matrix: the basic-auth credentials, an `admin` token, and `deploy`, `invoke` and
//! `read` tokens of the default namespace, without credentials and with an unknown token,
//! against representative routes: every read-only route, then every kind of write, each
//! refused (`401` / `403`) for those who may not and done by one who may.

use ferry_tests::gateway::{calls_and_statuses, dead_letter};
use serde_json::json;

use crate::common::{Auth, FN, Stack, stack};

/// The tokens of the matrix.
struct Tokens {
    admin: String,
    deploy: String,
    invoke: String,
    read: String,
    unknown: String,
}

impl Tokens {
    /// Everyone, in the column order of the read table.
    fn everyone(&self) -> [(&'static str, Auth<'_>); 7] {
        [
            ("basic", Auth::Basic),
            ("admin token", Auth::Bearer(&self.admin)),
            ("deploy token", Auth::Bearer(&self.deploy)),
            ("invoke token", Auth::Bearer(&self.invoke)),
            ("read token", Auth::Bearer(&self.read)),
            ("no credentials", Auth::None),
            ("unknown token", Auth::Bearer(&self.unknown)),
        ]
    }
}

/// Sends `method path` with `body` as `auth`; asserts the status.
async fn expect(s: &Stack, auth: Auth<'_>, method: &str, path: &str, body: &str, want: u16) {
    let body = (!body.is_empty()).then_some(body);
    let (status, answer) = s.send(method, path, auth, body).await;
    assert_eq!(status, want, "{auth:?}: {method} {path}: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_reaches_its_routes_and_no_others() {
    let s = stack(&[
        json!({"service": "echo"}),
        json!({"service": "guarded", "labels": {"com.ferry.auth": "required"}}),
    ])
    .await;
    let t = Tokens {
        admin: s.token("root", &["admin"], &[]).await,
        deploy: s.token("deployer", &["deploy"], &[FN]).await,
        invoke: s.token("caller", &["invoke"], &[FN]).await,
        read: s.token("reader", &["read"], &[FN]).await,
        unknown: format!("ferry_{}", "x".repeat(40)),
    };
    reads(&s, &t).await;
    calls(&s, &t).await;
    deploys(&s, &t).await;
    dead_letters(&s, &t).await;
    admin_only(&s, &t).await;
}

/// Every read-only route, for everyone.
async fn reads(s: &Stack, t: &Tokens) {
    let call = s.submit("echo").await;
    let status = format!("/system/async-calls/{call}");
    // basic, admin, deploy, invoke, read, none, unknown
    const READ: [u16; 7] = [200, 200, 200, 403, 200, 401, 401];
    const DEPLOY: [u16; 7] = [200, 200, 200, 403, 403, 401, 401];
    const ADMIN: [u16; 7] = [200, 200, 403, 403, 403, 401, 401];
    const OPEN: [u16; 7] = [200; 7];
    let reads: &[(&str, [u16; 7])] = &[
        ("/system/functions", READ),
        ("/system/function/echo", READ),
        ("/system/function/echo.openfaas-fn", READ),
        ("/system/info", READ),
        ("/system/namespaces", READ),
        ("/system/namespace/openfaas-fn", READ),
        ("/system/logs?name=echo&tail=1", READ),
        (&status, READ),
        ("/system/dead-letters?namespace=openfaas-fn", READ),
        ("/system/dead-letters?function=echo", READ),
        ("/system/secrets", DEPLOY),
        ("/system/tokens", ADMIN),
        ("/system/endpoints/echo", ADMIN),
        ("/system/unknown", [404, 404, 403, 403, 403, 401, 401]),
        ("/function/echo", OPEN),
        ("/function/guarded", [200, 200, 403, 200, 403, 401, 401]),
        ("/healthz", OPEN),
        ("/metrics", OPEN),
    ];
    for (path, expected) in reads {
        for ((_, auth), want) in t.everyone().into_iter().zip(expected) {
            expect(s, auth, "GET", path, "", *want).await;
        }
    }
}

/// Async calls of a labelled function, and cancelling a call: invoke.
async fn calls(s: &Stack, t: &Tokens) {
    let expected = [202, 202, 403, 202, 403, 401, 401];
    for ((_, auth), want) in t.everyone().into_iter().zip(expected) {
        expect(s, auth, "POST", "/async-function/guarded", "x", want).await;
    }
    let status = format!("/system/async-calls/{}", s.submit("echo").await);
    for (auth, want) in [
        (Auth::Bearer(&t.read), 403),
        (Auth::Bearer(&t.deploy), 403),
        (Auth::None, 401),
        (Auth::Bearer(&t.invoke), 202),
    ] {
        expect(s, auth, "DELETE", &status, "", want).await;
    }
}

/// Scaling, secrets, functions: deploy.
async fn deploys(s: &Stack, t: &Tokens) {
    let (r, i, d) = (
        Auth::Bearer(&t.read),
        Auth::Bearer(&t.invoke),
        Auth::Bearer(&t.deploy),
    );
    let scale = json!({"serviceName": "echo", "replicas": 1}).to_string();
    for (auth, want) in [(r, 403), (i, 403), (Auth::None, 401), (d, 202)] {
        expect(s, auth, "POST", "/system/scale-function/echo", &scale, want).await;
    }
    let secret = json!({"name": "api-key", "value": "v1"}).to_string();
    let name = json!({"name": "api-key"}).to_string();
    let made = json!({"service": "made", "image": s.image.tag}).to_string();
    let gone = json!({"functionName": "made"}).to_string();
    let steps: &[(Auth<'_>, &str, &str, &str, u16)] = &[
        (r, "POST", "/system/secrets", &secret, 403),
        (i, "POST", "/system/secrets", &secret, 403),
        (d, "POST", "/system/secrets", &secret, 201),
        (i, "PUT", "/system/secrets", &secret, 403),
        (d, "PUT", "/system/secrets", &secret, 200),
        (r, "DELETE", "/system/secrets", &name, 403),
        (d, "DELETE", "/system/secrets", &name, 200),
        (r, "POST", "/system/functions", &made, 403),
        (i, "POST", "/system/functions", &made, 403),
        (d, "POST", "/system/functions", &made, 202),
    ];
    for (auth, method, path, body, want) in steps {
        expect(s, *auth, method, path, body, *want).await;
    }
    s.provider.wait_available("made", 1).await;
    let steps: &[(Auth<'_>, &str, &str, &str, u16)] = &[
        (i, "PUT", "/system/functions", &made, 403),
        (d, "PUT", "/system/functions", &made, 202),
        (r, "DELETE", "/system/functions", &gone, 403),
        (i, "DELETE", "/system/functions", &gone, 403),
        (d, "DELETE", "/system/functions", &gone, 202),
    ];
    for (auth, method, path, body, want) in steps {
        expect(s, *auth, method, path, body, *want).await;
    }
}

/// Dead letters: read to look, invoke to redrive or delete.
async fn dead_letters(s: &Stack, t: &Tokens) {
    let (r, i, d) = (
        Auth::Bearer(&t.read),
        Auth::Bearer(&t.invoke),
        Auth::Bearer(&t.deploy),
    );
    let nats = s.nats.connect().await;
    calls_and_statuses(&s.nats).await;
    let (first, second) = (s.submit("echo").await, s.submit("echo").await);
    dead_letter(&nats, &first, &[500]).await;
    dead_letter(&nats, &second, &[500]).await;
    let letter = format!("/system/dead-letters/{first}");
    let redrive = format!("{letter}/redrive");
    let other = format!("/system/dead-letters/{second}");
    let all = "/system/dead-letters/redrive?function=echo";
    let steps: &[(Auth<'_>, &str, &str, u16)] = &[
        (i, "GET", &letter, 403),
        (r, "GET", &letter, 200),
        (d, "GET", &letter, 200),
        (r, "POST", &redrive, 403),
        (d, "POST", &redrive, 403),
        (i, "POST", &redrive, 202),
        (r, "DELETE", &other, 403),
        (i, "DELETE", &other, 204),
        (r, "POST", all, 403),
        (i, "POST", all, 200),
    ];
    for (auth, method, path, want) in steps {
        expect(s, *auth, method, path, "", *want).await;
    }
}

/// Namespaces and tokens are the admin's; a revoked token is refused.
async fn admin_only(s: &Stack, t: &Tokens) {
    let (r, i, d) = (
        Auth::Bearer(&t.read),
        Auth::Bearer(&t.invoke),
        Auth::Bearer(&t.deploy),
    );
    let a = Auth::Bearer(&t.admin);
    let team = json!({"name": "team", "labels": {}}).to_string();
    let ci = json!({"name": "ci", "scopes": ["read"], "namespaces": ["*"]}).to_string();
    let steps: &[(Auth<'_>, &str, &str, &str, u16)] = &[
        (d, "POST", "/system/namespace/", &team, 403),
        (a, "POST", "/system/namespace/", &team, 201),
        (d, "PUT", "/system/namespace/team", &team, 403),
        (d, "DELETE", "/system/namespace/team", "", 403),
        (a, "DELETE", "/system/namespace/team", "", 202),
        (d, "POST", "/system/tokens", &ci, 403),
        (i, "POST", "/system/tokens", &ci, 403),
        (r, "POST", "/system/tokens", &ci, 403),
        (a, "POST", "/system/tokens", &ci, 201),
        (r, "DELETE", "/system/tokens/ci", "", 403),
        (a, "DELETE", "/system/tokens/ci", "", 204),
        (Auth::Basic, "DELETE", "/system/tokens/reader", "", 204),
        (r, "GET", "/system/functions", "", 401),
    ];
    for (auth, method, path, body, want) in steps {
        expect(s, *auth, method, path, body, *want).await;
    }
}
