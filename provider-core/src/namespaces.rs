//! Namespaces: `GET /system/namespaces` and `GET`, `POST`, `PUT`, `DELETE
//! /system/namespace/{name}`, what `faas-cli namespaces` and `faas-cli namespace
//! get|create|update|remove` speak, over a [`NamespaceBackend`]. The plural
//! `/system/namespaces/{name}` of OpenFaaS' docs is accepted as well, and so is `POST
//! /system/namespace` without the trailing slash.
//!
//! # What a namespace is
//!
//! A namespace exists when it is
//!
//! - the default namespace `openfaas-fn` (always);
//! - created with `POST /system/namespace/`: kept with its labels and annotations by the
//!   backend (provider-docker in files under `data_dir`, provider-swarm in Swarm configs), so
//!   it survives restarts; or
//! - *implicit*: it holds functions. Deploying into a namespace that was never created works
//!   and makes the namespace appear; it goes with its last function unless it was created (or
//!   updated) through this API.
//!
//! `GET /system/namespaces` lists all of them, the default one first, then the others sorted.
//! The rules ([`visible`], [`names`], [`check_create`], [`check_update`], [`check_delete`]) are
//! here; a backend applies them under its own lock, with what it stores.
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

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, post};
use ferry_proto::namespace::OPENFAAS;
use ferry_proto::routes::{SYSTEM_NAMESPACE, SYSTEM_NAMESPACES};
use ferry_proto::{DEFAULT_NAMESPACE, FunctionNamespace, Name};

use crate::api::{Backend, parse_json};
use crate::error::ApiError;

/// A backend that keeps namespaces: what the namespace routes call, with validated names and
/// bodies (label `openfaas` set). Each method applies the rules of this module under the
/// backend's own lock.
pub trait NamespaceBackend: Backend {
    /// Every namespace's name (see [`names`]).
    fn namespace_names(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
    /// `name` as the API reports it, if it exists (see [`visible`]).
    fn namespace(
        self: &Arc<Self>,
        name: &Name,
    ) -> impl Future<Output = Result<Option<FunctionNamespace>, Self::Error>> + Send;
    /// Creates `name` (see [`check_create`]).
    fn create_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Replaces the labels and annotations of `name` (see [`check_update`]).
    fn update_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Deletes `name` (see [`check_delete`]).
    fn delete_namespace(
        self: &Arc<Self>,
        name: &Name,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Whether `name` is the default namespace.
pub fn is_default(name: &Name) -> bool {
    name.as_str() == DEFAULT_NAMESPACE
}

/// The default namespace, or one that only holds functions, as the API reports it.
pub fn implicit(name: &Name) -> FunctionNamespace {
    let mut ns = FunctionNamespace::new(name.as_str());
    ns.labels.insert(OPENFAAS.into(), "1".into());
    ns
}

/// `name` as the API reports it: `stored` if it was created or updated, else implicit when it
/// `holds_functions` or is the default one, else nothing.
pub fn visible(
    name: &Name,
    stored: Option<FunctionNamespace>,
    holds_functions: bool,
) -> Option<FunctionNamespace> {
    stored.or_else(|| (holds_functions || is_default(name)).then(|| implicit(name)))
}

/// Every namespace: the default one first, then the `stored` ones and `with_functions`
/// (those holding functions), sorted, each once.
pub fn names(
    stored: impl IntoIterator<Item = String>,
    with_functions: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut others: BTreeSet<String> = stored.into_iter().collect();
    others.extend(with_functions);
    others.remove(DEFAULT_NAMESPACE);
    std::iter::once(DEFAULT_NAMESPACE.to_string())
        .chain(others)
        .collect()
}

/// Create: `409` if it exists, stored or implicit.
pub fn check_create(name: &Name, stored: bool, holds_functions: bool) -> Result<(), ApiError> {
    if stored || holds_functions || is_default(name) {
        return Err(ApiError::NamespaceExists(name.to_string()));
    }
    Ok(())
}

/// Update: `404` if it does not exist. An implicit namespace (or the default one) is stored
/// from then on, as a created one is.
pub fn check_update(name: &Name, stored: bool, holds_functions: bool) -> Result<(), ApiError> {
    if !(stored || holds_functions || is_default(name)) {
        return Err(ApiError::NamespaceNotFound(name.to_string()));
    }
    Ok(())
}

/// Delete of `name`, which still holds `functions` and `secrets` (names): `409` for the
/// default namespace or while either list is not empty, `404` if it is not stored.
pub fn check_delete(
    name: &Name,
    stored: bool,
    functions: &[String],
    secrets: &[String],
) -> Result<(), ApiError> {
    let in_use = |reason: String| ApiError::NamespaceInUse {
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
    if !stored {
        return Err(ApiError::NamespaceNotFound(name.to_string()));
    }
    if !secrets.is_empty() {
        return Err(in_use(format!(
            "it still holds the secrets {}; remove them first (faas-cli secret remove NAME --namespace {name})",
            secrets.join(", ")
        )));
    }
    Ok(())
}

const BODY: &str = "a namespace, {\"name\": ..., \"labels\": {...}, \"annotations\": {...}}";

/// Validates a namespace name from the path or a body.
fn valid(name: &str) -> Result<Name, ApiError> {
    Name::new(name).map_err(|e| ApiError::BadRequest(format!("invalid namespace name: {e}")))
}

/// The namespace a request is about: the one in the path and the one in the body must agree
/// when both are given; one of them is required.
fn resolve(path: Option<&str>, body: &str) -> Result<Name, ApiError> {
    match (path, body.trim()) {
        (None, "") => Err(ApiError::BadRequest(
            "the \"name\" field is required: POST /system/namespace/ with {\"name\": ...}".into(),
        )),
        (Some(path), "") => valid(path),
        (None, body) => valid(body),
        (Some(path), body) if path == body => valid(path),
        (Some(path), body) => Err(ApiError::BadRequest(format!(
            "the name {body:?} in the body does not match {path:?} in the path"
        ))),
    }
}

/// A `POST` or `PUT` body, for the namespace in `path` if any: its validated name, and the
/// namespace to store (label `openfaas` set to `"1"`).
pub fn request(path: Option<&str>, body: &[u8]) -> Result<(Name, FunctionNamespace), ApiError> {
    let mut ns: FunctionNamespace = parse_json(body, BODY)?;
    let name = resolve(path, &ns.name)?;
    match ns.labels.get(OPENFAAS).map(String::as_str) {
        None | Some("1" | "true") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "label {OPENFAAS}={other:?}: every ferry namespace is an OpenFaaS namespace, so this label is \"1\" (or left out)"
            )));
        }
    }
    ns.labels.insert(OPENFAAS.into(), "1".into());
    ns.name = name.to_string();
    Ok((name, ns))
}

/// The namespace routes.
pub fn routes<B: NamespaceBackend>() -> Router<Arc<B>> {
    let unnamed = || -> MethodRouter<Arc<B>> {
        post(create::<B>)
            .get(name_missing)
            .put(name_missing)
            .delete(name_missing)
    };
    let named = || -> MethodRouter<Arc<B>> {
        get(show::<B>)
            .post(create_named::<B>)
            .put(update::<B>)
            .delete(delete::<B>)
    };
    Router::new()
        .route(SYSTEM_NAMESPACES, get(list::<B>))
        .route("/system/namespace", unnamed())
        .route(SYSTEM_NAMESPACE, unnamed())
        .route("/system/namespace/{name}", named())
        .route("/system/namespaces/{name}", named())
}

/// `GET /system/namespaces`: every namespace's name.
async fn list<B: NamespaceBackend>(State(b): State<Arc<B>>) -> Result<Response, B::Error> {
    Ok(Json(b.namespace_names().await?).into_response())
}

/// `GET /system/namespace/{name}` → `200` with the namespace; `404` if unknown.
async fn show<B: NamespaceBackend>(
    State(b): State<Arc<B>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, B::Error> {
    let name = valid(&name)?;
    match b.namespace(&name).await? {
        Some(ns) => Ok(Json(ns).into_response()),
        None => Err(ApiError::NamespaceNotFound(name.to_string()).into()),
    }
}

/// `POST /system/namespace/` → `201`; `409` if it exists.
async fn create<B: NamespaceBackend>(
    State(b): State<Arc<B>>,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    create_in(&b, None, &body).await
}

/// `POST /system/namespace/{name}`, as [`create`].
async fn create_named<B: NamespaceBackend>(
    State(b): State<Arc<B>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    create_in(&b, Some(&name), &body).await
}

async fn create_in<B: NamespaceBackend>(
    b: &Arc<B>,
    path: Option<&str>,
    body: &[u8],
) -> Result<StatusCode, B::Error> {
    let (name, ns) = request(path, body)?;
    b.create_namespace(&name, ns).await?;
    tracing::info!(namespace = %name, "created namespace");
    Ok(StatusCode::CREATED)
}

/// `PUT /system/namespace/{name}` → `202`; `404` if unknown.
async fn update<B: NamespaceBackend>(
    State(b): State<Arc<B>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let (name, ns) = request(Some(&name), &body)?;
    b.update_namespace(&name, ns).await?;
    tracing::info!(namespace = %name, "updated namespace");
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /system/namespace/{name}` (a body, as faas-cli sends one, must name the same
/// namespace) → `202`; `404` if unknown; `409` for the default namespace or one in use.
async fn delete<B: NamespaceBackend>(
    State(b): State<Arc<B>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        valid(&name)?
    } else {
        let ns: FunctionNamespace = parse_json(&body, BODY)?;
        resolve(Some(&name), &ns.name)?
    };
    b.delete_namespace(&name).await?;
    tracing::info!(namespace = %name, "deleted namespace");
    Ok(StatusCode::ACCEPTED)
}

/// `GET`, `PUT`, `DELETE /system/namespace/` → `400`: they need the name in the path.
async fn name_missing() -> ApiError {
    ApiError::BadRequest("name the namespace in the path: /system/namespace/<name>".into())
}

#[cfg(test)]
mod tests;
