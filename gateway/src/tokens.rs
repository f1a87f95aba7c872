//! API tokens: created, listed and deleted through `/system/tokens`, kept in the JetStream
//! key-value bucket `ferry-tokens`, and looked up on every request that carries
//! `Authorization: Bearer <token>`.
//!
//! A token is [`TOKEN_PREFIX`] followed by [`TOKEN_LEN`] letters and digits from the
//! thread-local CSPRNG (about 238 bits), shown once, in the answer that creates it. The
//! bucket holds, under the token's name, its SHA-256 (hex), scopes, namespaces and creation
//! time: never the token. A hash of so much randomness needs no salt or slow hashing; a
//! stolen bucket does not yield a usable token.
//!
//! Every gateway keeps the tokens in memory, keyed by hash, and [`TokenStore::keep_watching`]
//! keeps that map in step with the bucket: a watch from the bucket's current contents on,
//! followed by every change as JetStream pushes it, so a token created or deleted through any
//! gateway works or stops working on all of them within milliseconds. A request's token is
//! hashed and looked up in the map; no comparison runs over the token itself. The watch is
//! restarted (with backoff) when it fails; every change carries the bucket's revision and an
//! older one never overwrites a newer one, so replays are harmless. Deleting leaves a delete
//! marker (the bucket has no expiry), so a gateway that was away still learns of it. Until
//! the first watch delivered the bucket (NATS down at start), no token authenticates: the
//! basic-auth credentials still do.
//!
//! Tokens and their hashes are never logged; names, scopes and namespaces are.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation};
use async_nats::jetstream::{self};
use bytes::Bytes;
use ferry_proto::Name;
use ferry_proto::jetstream::TOKEN_BUCKET;
use ferry_proto::token::{ALL_NAMESPACES, NewToken, Scope, TOKEN_PREFIX, TokenInfo, TokenRequest};
use ferry_runtime::backoff::Doubling;
use ferry_runtime::jetstream::{NatsConfig, ensure_token_bucket};
use futures_util::StreamExt as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::access::{Grant, Namespaces};
use crate::error::GatewayError;

/// Random letters and digits after [`TOKEN_PREFIX`].
pub(crate) const TOKEN_LEN: usize = 40;
/// First pause between attempts to (re)start the watch.
const FIRST_WATCH_DELAY: Duration = Duration::from_millis(200);
/// Longest pause between attempts to (re)start the watch.
const MAX_WATCH_DELAY: Duration = Duration::from_secs(5);
/// How long a token API call waits for JetStream.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// A SHA-256 digest.
type Digest = [u8; 32];

/// The tokens, shared by the request handlers and the watch.
#[derive(Clone)]
pub(crate) struct TokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
    bucket: OnceCell<kv::Store>,
    known: RwLock<Known>,
}

/// What this gateway knows of the bucket.
#[derive(Default)]
struct Known {
    /// By name: the revision last applied, and the token's hash unless it was deleted.
    by_name: HashMap<String, (u64, Option<Digest>)>,
    /// By hash: what the token allows.
    by_hash: HashMap<Digest, Arc<Grant>>,
}

/// A token as stored in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stored {
    pub(crate) name: String,
    /// SHA-256 of the token, lower-case hex.
    pub(crate) sha256: String,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) namespaces: Vec<String>,
    pub(crate) created_at: String,
}

impl Stored {
    /// The grant and hash it stands for; `None` if it is not one this gateway would write.
    fn grant(&self) -> Option<(Digest, Grant)> {
        let digest: Digest = hex::decode(&self.sha256).ok()?.try_into().ok()?;
        let namespaces = match self.namespaces.as_slice() {
            [all] if all == ALL_NAMESPACES => Namespaces::All,
            list => Namespaces::Only(
                list.iter()
                    .map(|n| Name::new(n.as_str()).ok())
                    .collect::<Option<BTreeSet<Name>>>()?,
            ),
        };
        let grant = Grant {
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            namespaces,
        };
        Some((digest, grant))
    }

    fn info(self) -> TokenInfo {
        TokenInfo {
            name: self.name,
            scopes: self.scopes,
            namespaces: self.namespaces,
            created_at: self.created_at,
        }
    }
}

impl TokenStore {
    /// A store on `client` (connected or still connecting); empty until
    /// [`keep_watching`](Self::keep_watching) runs.
    pub(crate) fn new(client: async_nats::Client, config: &NatsConfig) -> TokenStore {
        let js = jetstream::ContextBuilder::new()
            .timeout(NATS_TIMEOUT)
            .build(client.clone());
        TokenStore {
            inner: Arc::new(Inner {
                client,
                js,
                config: config.clone(),
                bucket: OnceCell::new(),
                known: RwLock::new(Known::default()),
            }),
        }
    }

    /// What `token` allows, if it is a known token.
    pub(crate) fn find(&self, token: &str) -> Option<Arc<Grant>> {
        if !token.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let known = self.inner.known.read().expect("token map lock poisoned");
        known.by_hash.get(&digest(token)).cloned()
    }

    /// Creates a token (`400` invalid request, `409` name in use, `503` NATS unavailable).
    pub(crate) async fn create(&self, request: TokenRequest) -> Result<NewToken, GatewayError> {
        let (name, scopes, namespaces) = validate(request)?;
        let bucket = self.bucket().await?;
        let token = generate();
        let stored = Stored {
            name: name.to_string(),
            sha256: hex::encode(digest(&token)),
            scopes,
            namespaces,
            created_at: ferry_proto::time::now(),
        };
        let value = serde_json::to_vec(&stored)
            .map_err(|e| GatewayError::Internal(format!("encoding a token: {e}")))?;
        let revision = match bucket.create(name.as_str(), Bytes::from(value)).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                return Err(GatewayError::TokenExists(stored.name));
            }
            Err(e) => return Err(nats(e)),
        };
        self.apply(&stored.name, revision, Some(&stored));
        tracing::info!(
            token = %stored.name,
            scopes = ?stored.scopes,
            namespaces = ?stored.namespaces,
            "API token created"
        );
        Ok(NewToken {
            name: stored.name,
            token,
            scopes: stored.scopes,
            namespaces: stored.namespaces,
            created_at: stored.created_at,
        })
    }

    /// Every token, by name, without secrets.
    pub(crate) async fn list(&self) -> Result<Vec<TokenInfo>, GatewayError> {
        let bucket = self.bucket().await?;
        let mut keys = bucket.keys().await.map_err(nats)?;
        let mut tokens = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(nats)?;
            let Some(value) = bucket.get(&key).await.map_err(nats)? else {
                continue; // deleted meanwhile
            };
            match serde_json::from_slice::<Stored>(&value) {
                Ok(stored) => tokens.push(stored.info()),
                Err(error) => tracing::warn!(token = %key, %error, "unreadable token record"),
            }
        }
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tokens)
    }

    /// Deletes (revokes) the token `name` (`404` unknown).
    pub(crate) async fn delete(&self, name: &str) -> Result<(), GatewayError> {
        let unknown = || GatewayError::TokenNotFound(name.to_string());
        Name::new(name).map_err(|_| unknown())?;
        let bucket = self.bucket().await?;
        let entry = bucket.entry(name).await.map_err(nats)?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Err(unknown());
        };
        bucket.delete(name).await.map_err(nats)?;
        // The delete marker's revision is above the entry's: the watch's copy of it wins.
        self.apply(name, entry.revision + 1, None);
        tracing::info!(token = %name, "API token deleted");
        Ok(())
    }

    /// Follows the bucket until `cancel` fires: creates it if needed, then watches it from its
    /// current contents on, restarting the watch with backoff whenever it fails.
    pub(crate) async fn keep_watching(self, cancel: CancellationToken) {
        let mut pauses = Doubling::new(FIRST_WATCH_DELAY, MAX_WATCH_DELAY);
        let mut failures = 0u32;
        loop {
            let watched = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.watch(&mut pauses) => r,
            };
            if let Err(error) = watched {
                if failures % 10 == 0 {
                    tracing::warn!(bucket = TOKEN_BUCKET, %error, "API tokens: watch failed; retrying");
                }
                failures += 1;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pauses.next_pause()) => {}
            }
        }
    }

    /// One watch, until it ends or fails. `pauses` start over once it runs.
    async fn watch(&self, pauses: &mut Doubling) -> Result<(), WatchError> {
        let bucket = self.bucket().await.map_err(WatchError::Bucket)?;
        let mut watch = bucket
            .watch_with_history(">")
            .await
            .map_err(WatchError::Start)?;
        pauses.reset();
        tracing::debug!(bucket = TOKEN_BUCKET, "watching API tokens");
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(WatchError::Entry)?;
            let stored = match entry.operation {
                Operation::Put => match serde_json::from_slice::<Stored>(&entry.value) {
                    Ok(stored) if stored.name == entry.key => Some(stored),
                    _ => {
                        tracing::warn!(token = %entry.key, "ignoring an unreadable token record");
                        None
                    }
                },
                Operation::Delete | Operation::Purge => None,
            };
            self.apply(&entry.key, entry.revision, stored.as_ref());
        }
        Err(WatchError::Ended)
    }

    /// Records token `name` at `revision` (`None`: deleted), unless a later revision of it is
    /// known already.
    pub(crate) fn apply(&self, name: &str, revision: u64, stored: Option<&Stored>) {
        let mut known = self.inner.known.write().expect("token map lock poisoned");
        let Known { by_name, by_hash } = &mut *known;
        if let Some((seen, old)) = by_name.get(name) {
            if *seen >= revision {
                return;
            }
            if let Some(old) = old {
                by_hash.remove(old);
            }
        }
        let digest = stored.and_then(Stored::grant).map(|(digest, grant)| {
            by_hash.insert(digest, Arc::new(grant));
            digest
        });
        by_name.insert(name.to_string(), (revision, digest));
    }

    /// The bucket (created now if needed); `503` while NATS is unavailable.
    async fn bucket(&self) -> Result<kv::Store, GatewayError> {
        if self.inner.client.connection_state() != async_nats::connection::State::Connected {
            return Err(GatewayError::Nats(
                "not connected to NATS: API tokens cannot be read or changed".into(),
            ));
        }
        self.inner
            .bucket
            .get_or_try_init(|| ensure_token_bucket(&self.inner.js, &self.inner.config))
            .await
            .cloned()
            .map_err(|e| GatewayError::Nats(format!("the bucket {TOKEN_BUCKET}: {e}")))
    }
}

/// Why a watch of the tokens bucket stopped.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    /// The bucket could not be reached or created.
    #[error("{0}")]
    Bucket(#[source] GatewayError),
    /// The watch could not start.
    #[error("{0}")]
    Start(#[source] kv::WatchError),
    /// An entry could not be read.
    #[error("{0}")]
    Entry(#[source] kv::WatcherError),
    /// The server ended the watch.
    #[error("the watch ended")]
    Ended,
}

fn nats(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Nats(format!("{TOKEN_BUCKET}: {e}"))
}

/// SHA-256 of a token.
pub(crate) fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A new token: [`TOKEN_PREFIX`] and [`TOKEN_LEN`] random letters and digits.
pub(crate) fn generate() -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(TOKEN_LEN)
        .map(char::from)
        .collect();
    format!("{TOKEN_PREFIX}{random}")
}

/// A token request checked and normalised: its name, its scopes (sorted, once each) and its
/// namespaces (sorted, once each; `["*"]` for all).
fn validate(request: TokenRequest) -> Result<(Name, Vec<Scope>, Vec<String>), GatewayError> {
    let bad = |m: String| GatewayError::InvalidRequest(m);
    let name = Name::new(request.name.as_str()).map_err(|e| bad(format!("token name: {e}")))?;
    let mut scopes = BTreeSet::new();
    for s in &request.scopes {
        scopes.insert(Scope::parse(s).ok_or_else(|| {
            bad(format!(
                "unknown scope {s:?}: use admin, deploy, invoke or read"
            ))
        })?);
    }
    if scopes.is_empty() {
        return Err(bad(
            "scopes: give at least one of admin, deploy, invoke, read".into(),
        ));
    }
    let admin = scopes.contains(&Scope::Admin);
    let required =
        || bad("namespaces: list the namespaces the token may act in, or [\"*\"] for all".into());
    let namespaces = match request.namespaces {
        None if admin => vec![ALL_NAMESPACES.to_string()],
        Some(list) if list == [ALL_NAMESPACES] => list,
        Some(_) if admin => {
            return Err(bad(
                "an admin token covers every namespace: leave namespaces out, or give [\"*\"]"
                    .into(),
            ));
        }
        None => return Err(required()),
        Some(list) if list.is_empty() => return Err(required()),
        Some(list) => {
            let mut names = BTreeSet::new();
            for ns in &list {
                if ns == ALL_NAMESPACES {
                    return Err(bad("namespaces: \"*\" stands alone (all namespaces)".into()));
                }
                names.insert(Name::new(ns.as_str()).map_err(|e| bad(format!("namespace: {e}")))?);
            }
            names.into_iter().map(String::from).collect()
        }
    };
    Ok((name, scopes.into_iter().collect(), namespaces))
}

#[cfg(test)]
mod tests;
