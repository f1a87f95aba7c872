//! The route → scope table, what grants allow, and who a header authenticates.

use std::sync::Arc;

use ferry_proto::Name;
use ferry_proto::token::Scope::{self, Admin, Deploy, Invoke, Read};
use ferry_runtime::auth::Credentials;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method};

use super::rules::{Rule, rule};
use super::target::Target;
use super::{Access, Grant, Namespaces};
use crate::tokens::{Stored, TokenStore, digest};

fn m(s: &str) -> Method {
    Method::from_bytes(s.as_bytes()).unwrap()
}

#[test]
fn every_route_has_its_rule() {
    use Rule::{Call, PerCall, Scoped};
    let cases: &[(&str, &str, Rule<'_>)] = &[
        ("POST", "/function/echo", Call("echo")),
        ("GET", "/function/echo.dev/a/b", Call("echo.dev")),
        ("PUT", "/async-function/echo/x", Call("echo")),
        ("GET", "/function", Call("")),
        ("GET", "/function/", Call("")),
        ("GET", "/async-function", Call("")),
        ("GET", "/system/functions", Scoped(Read, Target::Query)),
        ("HEAD", "/system/functions", Scoped(Read, Target::Query)),
        (
            "POST",
            "/system/functions",
            Scoped(Deploy, Target::Deployment),
        ),
        (
            "PUT",
            "/system/functions",
            Scoped(Deploy, Target::Deployment),
        ),
        (
            "DELETE",
            "/system/functions",
            Scoped(Deploy, Target::DeleteFunction),
        ),
        (
            "GET",
            "/system/function/echo",
            Scoped(Read, Target::Function("echo")),
        ),
        (
            "POST",
            "/system/scale-function/e",
            Scoped(Deploy, Target::Scale("e")),
        ),
        ("GET", "/system/secrets", Scoped(Deploy, Target::Query)),
        ("POST", "/system/secrets", Scoped(Deploy, Target::Secret)),
        ("PUT", "/system/secrets", Scoped(Deploy, Target::Secret)),
        ("DELETE", "/system/secrets", Scoped(Deploy, Target::Secret)),
        ("GET", "/system/logs", Scoped(Read, Target::Logs)),
        ("GET", "/system/info", Scoped(Read, Target::None)),
        ("GET", "/system/namespaces", Scoped(Read, Target::None)),
        (
            "GET",
            "/system/namespace/dev",
            Scoped(Read, Target::Namespace("dev")),
        ),
        (
            "GET",
            "/system/namespaces/dev",
            Scoped(Read, Target::Namespace("dev")),
        ),
        ("GET", "/system/async-calls/c1", PerCall(Read)),
        (
            "GET",
            "/system/async-calls",
            Scoped(Read, Target::FunctionFilter),
        ),
        ("DELETE", "/system/async-calls/c1", PerCall(Invoke)),
        (
            "GET",
            "/system/function-metrics",
            Scoped(Read, Target::FunctionFilter),
        ),
        (
            "GET",
            "/system/dead-letters",
            Scoped(Read, Target::FunctionFilter),
        ),
        (
            "POST",
            "/system/dead-letters/redrive",
            Scoped(Invoke, Target::FunctionFilter),
        ),
        ("GET", "/system/dead-letters/redrive", PerCall(Read)),
        ("GET", "/system/dead-letters/c1", PerCall(Read)),
        ("DELETE", "/system/dead-letters/c1", PerCall(Invoke)),
        ("POST", "/system/dead-letters/c1/redrive", PerCall(Invoke)),
        ("GET", "/healthz", Rule::Open),
        ("GET", "/metrics", Rule::Open),
        ("GET", "/", Rule::Open),
        ("GET", "/functionx", Rule::Open),
        ("GET", "/systemx/functions", Rule::Open),
        ("GET", "/System/functions", Rule::Open),
        ("GET", "//system/functions", Rule::Open),
        ("GET", "/system%2Ffunctions", Rule::Open),
    ];
    for (method, path, want) in cases {
        assert_eq!(rule(&m(method), path), *want, "{method} {path}");
    }
}

#[test]
fn admin_routes_and_anything_unusual_under_system_need_admin() {
    let admin = [
        ("GET", "/system"),
        ("GET", "/system/"),
        ("GET", "/system/tokens"),
        ("POST", "/system/tokens"),
        ("DELETE", "/system/tokens/ci"),
        ("GET", "/system/endpoints/echo"),
        ("POST", "/system/namespace/"),
        ("POST", "/system/namespaces"),
        ("PUT", "/system/namespace/dev"),
        ("DELETE", "/system/namespace/dev"),
        ("PATCH", "/system/functions"),
        ("POST", "/system/function/echo"),
        ("GET", "/system/unknown"),
        ("GET", "/system/functions/"),
        ("GET", "/system//functions"),
        ("GET", "/system/./functions"),
        ("GET", "/system/../system/tokens"),
        ("GET", "/system/%2e%2e/system/tokens"),
        ("GET", "/system/functions%2F..%2Ftokens"),
        ("GET", "/system/function/echo%2Edev"),
        ("GET", "/system/function/echo/x"),
        ("GET", "/system/async-calls/c1/x"),
    ];
    for (method, path) in admin {
        assert_eq!(rule(&m(method), path), Rule::Admin, "{method} {path}");
    }
}

fn grant(scopes: &[Scope], namespaces: &[&str]) -> Arc<Grant> {
    let namespaces = match namespaces {
        ["*"] => Namespaces::All,
        list => Namespaces::Only(list.iter().map(|n| Name::new(*n).unwrap()).collect()),
    };
    Arc::new(Grant {
        name: "t".into(),
        scopes: scopes.to_vec(),
        namespaces,
    })
}

fn ns(list: &[&str]) -> Vec<Name> {
    list.iter().map(|n| Name::new(*n).unwrap()).collect()
}

/// The status `demand` answers (200 for allowed).
fn demand(access: &Access, scope: Scope, namespaces: Option<&[&str]>) -> u16 {
    let names = namespaces.map(ns);
    match access.demand(scope, names.as_deref()) {
        Ok(()) => 200,
        Err(e) => e.status().as_u16(),
    }
}

#[test]
fn scopes_and_namespaces_allow_and_deny() {
    let fn_ns = Some(&["openfaas-fn"][..]);
    let dev = Some(&["dev"][..]);
    let both = Some(&["openfaas-fn", "dev"][..]);
    let deploy = Access::Token(grant(&[Deploy], &["openfaas-fn"]));
    let invoke = Access::Token(grant(&[Invoke], &["openfaas-fn"]));
    let read_all = Access::Token(grant(&[Read], &["*"]));
    let cases: &[(&Access, Scope, Option<&[&str]>, u16)] = &[
        (&Access::Open, Deploy, None, 200),
        (&Access::Admin, Deploy, dev, 200),
        (&Access::Anonymous, Read, fn_ns, 401),
        (&Access::Invalid("x"), Read, fn_ns, 401),
        (&deploy, Deploy, fn_ns, 200),
        (&deploy, Read, fn_ns, 200),
        (&deploy, Invoke, fn_ns, 403),
        (&deploy, Deploy, dev, 403),
        (&deploy, Deploy, both, 403),
        (&deploy, Read, None, 403),
        (&deploy, Read, Some(&[]), 200),
        (&invoke, Invoke, fn_ns, 200),
        (&invoke, Read, fn_ns, 403),
        (&read_all, Read, dev, 200),
        (&read_all, Read, None, 200),
        (&read_all, Deploy, fn_ns, 403),
    ];
    for (access, scope, namespaces, want) in cases {
        assert_eq!(
            demand(access, *scope, *namespaces),
            *want,
            "{access:?} {scope} {namespaces:?}"
        );
    }
    assert!(read_all.everywhere(Read) && !deploy.everywhere(Deploy));
    assert_eq!(deploy.demand_admin().unwrap_err().status(), 403);
    assert_eq!(Access::Anonymous.demand_admin().unwrap_err().status(), 401);
    assert!(Access::Admin.demand_admin().is_ok());
    assert_eq!(invoke.demand_scope(Read).unwrap_err().status(), 403);
    assert!(deploy.demand_scope(Read).is_ok());
    // A stored call's function, `name.namespace`.
    assert!(invoke.demand_function(Invoke, "echo.openfaas-fn").is_ok());
    assert!(invoke.demand_function(Invoke, "echo").is_ok());
    let other = invoke.demand_function(Invoke, "echo.dev").unwrap_err();
    assert_eq!(other.status(), 403);
    assert_eq!(
        invoke
            .demand_function(Invoke, "Bad.Name")
            .unwrap_err()
            .status(),
        403
    );
    assert!(Access::Admin.demand_function(Invoke, "Bad.Name").is_ok());
}

#[tokio::test]
async fn one_authorization_header_authenticates() {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap();
    let tokens = TokenStore::new(
        client,
        &ferry_runtime::jetstream::NatsConfig::from_env(
            &std::collections::HashMap::<&str, &str>::new(),
        )
        .unwrap(),
    );
    let credentials = Credentials::new("admin", "pw");
    let (ci, root) = (crate::tokens::generate(), crate::tokens::generate());
    for (name, token, scopes, revision) in [
        ("ci", &ci, vec![Invoke], 1),
        ("root", &root, vec![Admin], 2),
    ] {
        let stored = Stored {
            name: name.into(),
            sha256: hex::encode(digest(token)),
            scopes,
            namespaces: vec!["openfaas-fn".into()],
            created_at: "2026-12-04T00:00:00Z".into(),
        };
        tokens.apply(name, revision, Some(&stored));
    }
    let authenticate = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        Access::authenticate(&headers, &credentials, &tokens)
    };
    let basic = credentials.header_value();
    let kind = |a: Access| match a {
        Access::Open => "open".to_string(),
        Access::Admin => "admin".to_string(),
        Access::Token(g) => format!("token {}", g.name),
        Access::Anonymous => "anonymous".to_string(),
        Access::Invalid(why) => format!("invalid: {why}"),
    };
    assert_eq!(kind(authenticate(&[])), "anonymous");
    assert_eq!(kind(authenticate(&[&basic])), "admin");
    assert_eq!(
        kind(authenticate(&[&basic.replace("Basic", "BASIC")])),
        "admin"
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_eq!(kind(authenticate(&[&format!("{scheme} {ci}")])), "token ci");
    }
    assert_eq!(kind(authenticate(&[&format!("Bearer  {ci} ")])), "token ci");
    assert_eq!(kind(authenticate(&[&format!("Bearer {root}")])), "admin");
    let invalid = [
        vec![format!("Bearer {ci}x")],
        vec![format!("Bearer {}", ci.to_uppercase())],
        vec![format!("Bearer{ci}")],
        vec![format!("Token {ci}")],
        vec![ci.clone()],
        vec!["Basic YWRtaW46d3Jvbmc=".into()],
        vec![format!("Bearer {ci}"), basic.clone()],
        vec![basic.clone(), basic.clone()],
    ];
    for values in invalid {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        assert!(
            kind(authenticate(&values)).starts_with("invalid"),
            "{values:?}"
        );
    }
    // A deleted token stops authenticating; an older revision does not bring it back.
    tokens.apply("ci", 3, None);
    assert!(kind(authenticate(&[&format!("Bearer {ci}")])).starts_with("invalid"));
}
