//! Token requests, the token format, and the in-memory map the watch keeps.

use std::collections::HashMap;

use ferry_proto::token::{Scope, TOKEN_PREFIX, TokenRequest};

use super::*;

fn request(name: &str, scopes: &[&str], namespaces: Option<&[&str]>) -> TokenRequest {
    TokenRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        namespaces: namespaces.map(|n| n.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn requests_are_checked_and_normalised() {
    let (name, scopes, namespaces) = validate(request(
        "ci",
        &["read", "invoke", "read"],
        Some(&["dev", "openfaas-fn", "dev"]),
    ))
    .unwrap();
    assert_eq!(name.as_str(), "ci");
    assert_eq!(scopes, [Scope::Invoke, Scope::Read]);
    assert_eq!(namespaces, ["dev", "openfaas-fn"]);
    let (_, scopes, namespaces) = validate(request("root", &["admin"], None)).unwrap();
    assert_eq!(
        (scopes, namespaces),
        (vec![Scope::Admin], vec!["*".to_string()])
    );
    let (_, _, namespaces) = validate(request("r", &["read"], Some(&["*"]))).unwrap();
    assert_eq!(namespaces, ["*"]);
    assert!(validate(request("root", &["admin", "read"], Some(&["*"]))).is_ok());

    let refused = [
        request("CI", &["read"], Some(&["dev"])),
        request("", &["read"], Some(&["dev"])),
        request("a.b", &["read"], Some(&["dev"])),
        request("ci", &[], Some(&["dev"])),
        request("ci", &["write"], Some(&["dev"])),
        request("ci", &["Read"], Some(&["dev"])),
        request("ci", &["read"], None),
        request("ci", &["read"], Some(&[])),
        request("ci", &["read"], Some(&["*", "dev"])),
        request("ci", &["read"], Some(&["Dev"])),
        request("root", &["admin"], Some(&["dev"])),
    ];
    for r in refused {
        let error = validate(r.clone()).unwrap_err();
        assert_eq!(error.status(), 400, "{r:?}: {error}");
    }
    let error = validate(request("ci", &["write"], Some(&["dev"]))).unwrap_err();
    assert!(
        error.to_string().contains("unknown scope \"write\""),
        "{error}"
    );
}

#[test]
fn tokens_are_random_and_only_their_hash_is_kept() {
    let a = generate();
    let b = generate();
    assert_ne!(a, b);
    let random = a.strip_prefix(TOKEN_PREFIX).unwrap();
    assert_eq!(random.len(), TOKEN_LEN);
    assert!(random.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        hex::encode(digest("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

async fn store() -> TokenStore {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap();
    let config = NatsConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
    TokenStore::new(client, &config)
}

fn stored(name: &str, token: &str, namespaces: &[&str]) -> Stored {
    Stored {
        name: name.into(),
        sha256: hex::encode(digest(token)),
        scopes: vec![Scope::Read],
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        created_at: "2026-12-04T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn the_map_follows_revisions_and_never_goes_back() {
    let tokens = store().await;
    let (first, second) = (generate(), generate());
    assert!(tokens.find(&first).is_none());
    tokens.apply("ci", 5, Some(&stored("ci", &first, &["dev"])));
    let grant = tokens.find(&first).expect("known");
    assert_eq!(grant.name, "ci");
    assert_eq!(
        grant.namespaces,
        Namespaces::Only([Name::new("dev").unwrap()].into())
    );
    // A replay of an older revision changes nothing.
    tokens.apply("ci", 4, None);
    assert!(tokens.find(&first).is_some());
    // Deleted, then created again with another token.
    tokens.apply("ci", 6, None);
    assert!(tokens.find(&first).is_none());
    tokens.apply("ci", 5, Some(&stored("ci", &first, &["dev"])));
    assert!(
        tokens.find(&first).is_none(),
        "an old put does not revive it"
    );
    tokens.apply("ci", 9, Some(&stored("ci", &second, &["*"])));
    assert!(tokens.find(&first).is_none());
    assert_eq!(tokens.find(&second).unwrap().namespaces, Namespaces::All);
    // Near misses find nothing.
    assert!(tokens.find(&second[..second.len() - 1]).is_none());
    assert!(
        tokens
            .find(second.strip_prefix(TOKEN_PREFIX).unwrap())
            .is_none()
    );
    // A record this gateway would not write authenticates no one.
    let mut bad = stored("odd", &first, &["Not A Name"]);
    tokens.apply("odd", 10, Some(&bad));
    assert!(tokens.find(&first).is_none());
    bad.sha256 = "zz".into();
    tokens.apply("odd", 11, Some(&bad));
    assert!(tokens.find(&first).is_none());
}

#[tokio::test]
async fn the_api_answers_503_without_nats() {
    let tokens = store().await;
    let error = tokens
        .create(request("ci", &["read"], Some(&["dev"])))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503, "{error}");
    assert_eq!(tokens.list().await.unwrap_err().status(), 503);
    assert_eq!(tokens.delete("ci").await.unwrap_err().status(), 503);
    // An invalid request is refused before NATS is asked.
    let error = tokens
        .create(request("ci", &["x"], None))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
}
