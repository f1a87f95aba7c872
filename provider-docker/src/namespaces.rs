//! Namespaces: `GET /system/namespaces` and `GET`, `POST`, `PUT`, `DELETE
//! /system/namespace/{name}`, what `faas-cli namespaces` and `faas-cli namespace
//! get|create|update|remove` speak. The plural `/system/namespaces/{name}` of OpenFaaS' docs is
//! accepted as well, and so is `POST /system/namespace` without the trailing slash.
//!
//! # What a namespace is
//!
//! On Docker a namespace is a name: the functions of `dev` are containers labelled
//! `com.openfaas.namespace=dev` and its secrets live in `<data_dir>/secrets/dev/`. A namespace
//! exists when it is
//!
//! - the default namespace `openfaas-fn` (always);
//! - created with `POST /system/namespace/`: kept with its labels and annotations in
//!   `<data_dir>/namespaces/<name>.json` (folder `0700`, files `0600`, written to a temporary
//!   file and renamed into place), so it survives restarts; or
//! - *implicit*: it holds functions. Deploying into a namespace that was never created works
//!   as it always did and makes the namespace appear; it goes with its last function unless it
//!   was created (or updated) through this API.
//!
//! `GET /system/namespaces` lists all of them, the default one first, then the others sorted.
//!
//! # Labels and annotations
//!
//! OpenFaaS marks the namespaces it may use with the label or annotation `openfaas="1"`
//! (faas-cli sends the label on every create and update). Every namespace ferry has is one
//! OpenFaaS may use, so every namespace is reported with the label `openfaas: "1"`, sent or
//! not; a request setting that label to anything but `"1"` (or faasd's `"true"`) is refused.
//! Annotations are kept as sent. `PUT` replaces labels and annotations as a whole, as faasd
//! replaces labels. Both are always objects in answers, `{}` when empty.
//!
//! # Statuses (faasd's, which faas-cli's client accepts)
//!
//! | request | answer |
//! |---|---|
//! | `GET /system/namespace/{name}` | `200` `{"name","labels","annotations"}`; `404` unknown |
//! | `POST /system/namespace/` (name in the body, or in the path) | `201`; `409` exists |
//! | `PUT /system/namespace/{name}` | `202`; `404` unknown |
//! | `DELETE /system/namespace/{name}` | `202`; `404` unknown; `409` default or in use |
//!
//! Bad JSON, an invalid name, or a body naming another namespace than the path answers `400`
//! and changes nothing. Errors are `{"message": "..."}`.
//!
//! # Deleting
//!
//! ferry refuses (`409`) to delete `openfaas-fn`, and a namespace still holding functions or
//! secrets: remove those first. This differs from faas-netes, where deleting a namespace
//! deletes the Kubernetes namespace with everything in it; ferry never removes a function or a
//! secret as a side effect. Deploys do not wait for namespace changes: a function deployed into
//! a namespace while it is being deleted keeps it as an implicit namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, post};
use ferry_proto::namespace::OPENFAAS;
use ferry_proto::routes::{SYSTEM_NAMESPACE, SYSTEM_NAMESPACES};
use ferry_proto::{DEFAULT_NAMESPACE, FunctionNamespace, Name};

use crate::api::parse_json;
use crate::error::ProviderError;
use crate::provider::Provider;
use crate::store::{create_private_dir, write_private};

/// The namespaces created (or updated) through the API, in memory and on disk.
#[derive(Debug)]
pub struct Namespaces {
    dir: PathBuf,
    created: Mutex<BTreeMap<Name, FunctionNamespace>>,
}

impl Namespaces {
    /// Opens (creating if needed) `<data_dir>/namespaces` and loads every namespace in it;
    /// unreadable files are logged and skipped.
    pub fn open(data_dir: &Path) -> io::Result<Namespaces> {
        let dir = data_dir.join("namespaces");
        create_private_dir(&dir)?;
        let mut created = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match load(&path) {
                Ok((name, ns)) => {
                    created.insert(name, ns);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable stored namespace")
                }
            }
        }
        tracing::info!(dir = %dir.display(), namespaces = created.len(), "loaded namespaces");
        Ok(Namespaces {
            dir,
            created: Mutex::new(created),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, FunctionNamespace>> {
        self.created.lock().expect("namespaces lock poisoned")
    }

    /// `name` as the API reports it, if it exists; `holds_functions` says whether functions
    /// are deployed in it.
    pub fn get(&self, name: &Name, holds_functions: bool) -> Option<FunctionNamespace> {
        if let Some(ns) = self.lock().get(name) {
            return Some(ns.clone());
        }
        (holds_functions || is_default(name)).then(|| implicit(name))
    }

    /// Every namespace: the default one first, then the created ones and `with_functions`
    /// (those holding functions), sorted, each once.
    pub fn names(&self, with_functions: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut others: BTreeSet<String> = self.lock().keys().map(Name::to_string).collect();
        others.extend(with_functions);
        others.remove(DEFAULT_NAMESPACE);
        std::iter::once(DEFAULT_NAMESPACE.to_string())
            .chain(others)
            .collect()
    }

    /// Creates `name` with `ns` (see [`request`]); `409` if it exists, created or implicit.
    pub fn create(
        &self,
        name: &Name,
        ns: FunctionNamespace,
        holds_functions: bool,
    ) -> Result<(), ProviderError> {
        let mut created = self.lock();
        if created.contains_key(name) || holds_functions || is_default(name) {
            return Err(ProviderError::NamespaceExists(name.to_string()));
        }
        self.write(name, &ns)?;
        created.insert(name.clone(), ns);
        Ok(())
    }

    /// Replaces the labels and annotations of `name`; `404` if it does not exist. An implicit
    /// namespace (or the default one) is kept from then on, as a created one is.
    pub fn update(
        &self,
        name: &Name,
        ns: FunctionNamespace,
        holds_functions: bool,
    ) -> Result<(), ProviderError> {
        let mut created = self.lock();
        if !(created.contains_key(name) || holds_functions || is_default(name)) {
            return Err(ProviderError::NamespaceNotFound(name.to_string()));
        }
        self.write(name, &ns)?;
        created.insert(name.clone(), ns);
        Ok(())
    }

    /// Deletes `name`, which still holds `functions` and `secrets` (names): `409` for the
    /// default namespace or while either list is not empty, `404` if it does not exist.
    pub fn delete(
        &self,
        name: &Name,
        functions: &[String],
        secrets: &[String],
    ) -> Result<(), ProviderError> {
        let mut created = self.lock();
        let in_use = |reason: String| ProviderError::NamespaceInUse {
            namespace: name.to_string(),
            reason,
        };
        if is_default(name) {
            return Err(in_use("it is the default namespace".into()));
        }
        if !functions.is_empty() {
            return Err(in_use(format!(
                "it still holds the functions {}; remove them first (faas-cli remove NAME --namespace {name})",
                functions.join(", ")
            )));
        }
        if !created.contains_key(name) {
            return Err(ProviderError::NamespaceNotFound(name.to_string()));
        }
        if !secrets.is_empty() {
            return Err(in_use(format!(
                "it still holds the secrets {}; remove them first (faas-cli secret remove NAME --namespace {name})",
                secrets.join(", ")
            )));
        }
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        created.remove(name);
        Ok(())
    }

    fn path(&self, name: &Name) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Writes the file of `name` atomically: a temporary file, synced, renamed into place.
    fn write(&self, name: &Name, ns: &FunctionNamespace) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let bytes = serde_json::to_vec_pretty(ns).map_err(io::Error::other)?;
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, self.path(name))
    }
}

/// A stored namespace, checked against the name of its file.
fn load(path: &Path) -> io::Result<(Name, FunctionNamespace)> {
    let bytes = std::fs::read(path)?;
    let ns: FunctionNamespace = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
    let name = Name::new(ns.name.as_str()).map_err(io::Error::other)?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(name.as_str()) {
        return Err(io::Error::other(format!(
            "it holds namespace {name}, not the one it is named after"
        )));
    }
    Ok((name, ns))
}

fn is_default(name: &Name) -> bool {
    name.as_str() == DEFAULT_NAMESPACE
}

/// The default namespace, or one that only holds functions, as the API reports it.
fn implicit(name: &Name) -> FunctionNamespace {
    let mut ns = FunctionNamespace::new(name.as_str());
    ns.labels.insert(OPENFAAS.into(), "1".into());
    ns
}

const BODY: &str = "a namespace, {\"name\": ..., \"labels\": {...}, \"annotations\": {...}}";

/// Validates a namespace name from the path or a body.
fn valid(name: &str) -> Result<Name, ProviderError> {
    Name::new(name).map_err(|e| ProviderError::BadRequest(format!("invalid namespace name: {e}")))
}

/// The namespace a request is about: the one in the path and the one in the body must agree
/// when both are given; one of them is required.
fn resolve(path: Option<&str>, body: &str) -> Result<Name, ProviderError> {
    match (path, body.trim()) {
        (None, "") => Err(ProviderError::BadRequest(
            "the \"name\" field is required: POST /system/namespace/ with {\"name\": ...}".into(),
        )),
        (Some(path), "") => valid(path),
        (None, body) => valid(body),
        (Some(path), body) if path == body => valid(path),
        (Some(path), body) => Err(ProviderError::BadRequest(format!(
            "the name {body:?} in the body does not match {path:?} in the path"
        ))),
    }
}

/// A `POST` or `PUT` body, for the namespace in `path` if any: its validated name, and the
/// namespace to store (label `openfaas` set to `"1"`).
fn request(path: Option<&str>, body: &[u8]) -> Result<(Name, FunctionNamespace), ProviderError> {
    let mut ns: FunctionNamespace = parse_json(body, BODY)?;
    let name = resolve(path, &ns.name)?;
    match ns.labels.get(OPENFAAS).map(String::as_str) {
        None | Some("1" | "true") => {}
        Some(other) => {
            return Err(ProviderError::BadRequest(format!(
                "label {OPENFAAS}={other:?}: every ferry namespace is an OpenFaaS namespace, so this label is \"1\" (or left out)"
            )));
        }
    }
    ns.labels.insert(OPENFAAS.into(), "1".into());
    ns.name = name.to_string();
    Ok((name, ns))
}

/// The namespace routes.
pub(crate) fn routes() -> Router<Arc<Provider>> {
    let unnamed = || -> MethodRouter<Arc<Provider>> {
        post(create)
            .get(name_missing)
            .put(name_missing)
            .delete(name_missing)
    };
    let named = || -> MethodRouter<Arc<Provider>> {
        get(show).post(create_named).put(update).delete(delete)
    };
    Router::new()
        .route(SYSTEM_NAMESPACES, get(list))
        .route("/system/namespace", unnamed())
        .route(SYSTEM_NAMESPACE, unnamed())
        .route("/system/namespace/{name}", named())
        .route("/system/namespaces/{name}", named())
}

fn holds_functions(p: &Provider, name: &Name) -> bool {
    !p.store.list(Some(name.as_str())).is_empty()
}

/// `GET /system/namespaces`: every namespace's name.
async fn list(State(p): State<Arc<Provider>>) -> Json<Vec<String>> {
    Json(p.namespaces.names(p.store.namespaces()))
}

/// `GET /system/namespace/{name}` → `200` with the namespace; `404` if unknown.
async fn show(
    State(p): State<Arc<Provider>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ProviderError> {
    let name = valid(&name)?;
    let ns = p
        .namespaces
        .get(&name, holds_functions(&p, &name))
        .ok_or_else(|| ProviderError::NamespaceNotFound(name.to_string()))?;
    Ok(Json(ns).into_response())
}

/// `POST /system/namespace/` → `201`; `409` if it exists.
async fn create(State(p): State<Arc<Provider>>, body: Bytes) -> Result<StatusCode, ProviderError> {
    create_in(&p, None, &body)
}

/// `POST /system/namespace/{name}`, as [`create`].
async fn create_named(
    State(p): State<Arc<Provider>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    create_in(&p, Some(&name), &body)
}

fn create_in(p: &Provider, path: Option<&str>, body: &[u8]) -> Result<StatusCode, ProviderError> {
    let (name, ns) = request(path, body)?;
    p.namespaces.create(&name, ns, holds_functions(p, &name))?;
    tracing::info!(namespace = %name, "created namespace");
    Ok(StatusCode::CREATED)
}

/// `PUT /system/namespace/{name}` → `202`; `404` if unknown.
async fn update(
    State(p): State<Arc<Provider>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    let (name, ns) = request(Some(&name), &body)?;
    p.namespaces.update(&name, ns, holds_functions(&p, &name))?;
    tracing::info!(namespace = %name, "updated namespace");
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /system/namespace/{name}` (a body, as faas-cli sends one, must name the same
/// namespace) → `202`; `404` if unknown; `409` for the default namespace or one in use.
async fn delete(
    State(p): State<Arc<Provider>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        valid(&name)?
    } else {
        let ns: FunctionNamespace = parse_json(&body, BODY)?;
        resolve(Some(&name), &ns.name)?
    };
    let functions: Vec<String> = p
        .store
        .list(Some(name.as_str()))
        .into_iter()
        .map(|(f, _)| f.name.to_string())
        .collect();
    let secrets = p.secrets.names(&name)?;
    p.namespaces.delete(&name, &functions, &secrets)?;
    tracing::info!(namespace = %name, "deleted namespace");
    Ok(StatusCode::ACCEPTED)
}

/// `GET`, `PUT`, `DELETE /system/namespace/` → `400`: they need the name in the path.
async fn name_missing() -> ProviderError {
    ProviderError::BadRequest("name the namespace in the path: /system/namespace/<name>".into())
}

#[cfg(test)]
mod tests;
