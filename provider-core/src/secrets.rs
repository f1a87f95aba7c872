//! `GET/POST/PUT/DELETE /system/secrets` over a [`SecretBackend`]: body parsing (never
//! quoting a value back), name and namespace validation, and the statuses every backend
//! answers with:
//!
//! | request | answer |
//! |---|---|
//! | `GET /system/secrets[?namespace=]` | `200` `[{"name","namespace"}]`, never values |
//! | `POST /system/secrets` | `201`; `409` exists; `400` invalid name or empty value |
//! | `PUT /system/secrets` | `200`; `404` unknown |
//! | `DELETE /system/secrets` (body, or `?name=&namespace=`) | `200`; `404` unknown; `409` named by a function |
//!
//! Where a secret lives (a file on disk for provider-docker, a Swarm secret for
//! provider-swarm) is the backend's business. Values are never returned and never logged:
//! only names and namespaces are.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_proto::{Name, Secret};

use crate::api::{Backend, namespace_param, parse_json};
use crate::error::ApiError;

/// A backend that keeps secrets: what the secrets routes call, with validated names.
pub trait SecretBackend: Backend {
    /// The names of the secrets of `ns`, sorted.
    fn secret_names(
        self: &Arc<Self>,
        ns: &Name,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
    /// Creates a secret; [`ApiError::SecretExists`] if it is there already.
    fn create_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Replaces the value of a secret; [`ApiError::SecretNotFound`] if unknown.
    fn update_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Deletes a secret; [`ApiError::SecretNotFound`] if unknown, [`in_use`] while a
    /// deployed function names it.
    fn delete_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The secrets routes.
pub fn routes<B: SecretBackend>() -> Router<Arc<B>> {
    Router::new().route(
        ferry_proto::routes::SYSTEM_SECRETS,
        get(list::<B>)
            .post(create::<B>)
            .put(update::<B>)
            .delete(delete::<B>),
    )
}

/// How errors name a secret: `<name> in namespace <ns>`.
pub fn describe(ns: &Name, name: &str) -> String {
    format!("{name} in namespace {ns}")
}

/// `Ok` when no function names the secret, else [`ApiError::SecretInUse`] listing `users`
/// (`name.namespace` each).
pub fn in_use(ns: &Name, name: &str, users: &[String]) -> Result<(), ApiError> {
    if users.is_empty() {
        return Ok(());
    }
    Err(ApiError::SecretInUse {
        secret: describe(ns, name),
        functions: users.join(", "),
    })
}

/// The `400` of a deployment naming a secret that does not exist.
pub fn missing(name: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to find secret: {name}"))
}

type Params = Query<HashMap<String, String>>;

/// `GET /system/secrets[?namespace=]`: names and namespaces, never values.
async fn list<B: SecretBackend>(
    State(b): State<Arc<B>>,
    Query(q): Params,
) -> Result<Response, B::Error> {
    let ns = Name::new(namespace_param(&q, None)?).map_err(ApiError::from)?;
    let secrets: Vec<Secret> = b
        .secret_names(&ns)
        .await?
        .into_iter()
        .map(|name| Secret {
            name,
            namespace: ns.to_string(),
            ..Secret::default()
        })
        .collect();
    Ok(axum::Json(secrets).into_response())
}

/// The namespace (query, else body, else default) and the validated name of a secret body.
pub fn target(q: &HashMap<String, String>, s: &Secret) -> Result<(Name, String), ApiError> {
    let ns = Name::new(namespace_param(q, Some(&s.namespace))?)?;
    let name = s.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest(
            "the \"name\" field is required".into(),
        ));
    }
    ferry_proto::name::validate_secret_name(name)
        .map_err(|e| ApiError::BadRequest(format!("invalid secret name: {e}")))?;
    Ok((ns, name.to_string()))
}

fn value_of(s: &Secret) -> Result<&[u8], ApiError> {
    match s.bytes() {
        [] => Err(ApiError::BadRequest(
            "the secret has no value: set \"value\" (text) or \"rawValue\" (base64)".into(),
        )),
        bytes => Ok(bytes),
    }
}

/// Parses a secret body. Unlike other bodies, a parse error does not quote serde's message,
/// which can repeat part of the value; it says only where parsing stopped.
pub fn parse_secret(body: &[u8]) -> Result<Secret, ApiError> {
    parse_json::<serde_json::Value>(body, SECRET_BODY)?;
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid secret at line {} column {}: expected {SECRET_BODY}, \"rawValue\" being base64",
            e.line(),
            e.column()
        ))
    })
}

const SECRET_BODY: &str = "{\"name\": ..., \"value\": ...}";

/// `POST /system/secrets` → 201; 409 if it exists.
async fn create<B: SecretBackend>(
    State(b): State<Arc<B>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let s = parse_secret(&body)?;
    let (ns, name) = target(&q, &s)?;
    b.create_secret(&ns, &name, value_of(&s)?).await?;
    tracing::info!(secret = %name, namespace = %ns, "created secret");
    Ok(StatusCode::CREATED)
}

/// `PUT /system/secrets` → 200; 404 if unknown.
async fn update<B: SecretBackend>(
    State(b): State<Arc<B>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let s = parse_secret(&body)?;
    let (ns, name) = target(&q, &s)?;
    b.update_secret(&ns, &name, value_of(&s)?).await?;
    tracing::info!(secret = %name, namespace = %ns, "updated secret");
    Ok(StatusCode::OK)
}

/// `DELETE /system/secrets` (body `{"name","namespace"}`, or `?name=&namespace=`) → 200;
/// 404 if unknown; 409 while a deployed function names it.
async fn delete<B: SecretBackend>(
    State(b): State<Arc<B>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, B::Error> {
    let s: Secret = if body.iter().all(u8::is_ascii_whitespace) {
        Secret {
            name: q.get("name").cloned().unwrap_or_default(),
            ..Secret::default()
        }
    } else {
        parse_secret(&body)?
    };
    let (ns, name) = target(&q, &s)?;
    b.delete_secret(&ns, &name).await?;
    tracing::info!(secret = %name, namespace = %ns, "deleted secret");
    // 200, as faasd answers: faas-cli takes only 200 and 202 for a removed secret.
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_do_not_repeat_the_value() {
        for body in [
            r#"{"name":"n","value":987654}"#,
            r#"{"name":"n","rawValue":"987654%%"}"#,
            r#"{"name":"n","value":["987654"]}"#,
        ] {
            let e = parse_secret(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("line 1") && !e.contains("987654"), "{e}");
        }
        let s = parse_secret(br#"{"name":"n","rawValue":"aGk="}"#).unwrap();
        assert_eq!(s.bytes(), b"hi");
    }

    #[test]
    fn targets_and_in_use() {
        let q = HashMap::from([("namespace".to_string(), "dev".to_string())]);
        let s = Secret {
            name: " db ".into(),
            ..Secret::default()
        };
        let (ns, name) = target(&q, &s).unwrap();
        assert_eq!((ns.as_str(), name.as_str()), ("dev", "db"));
        let bad = Secret {
            name: "../x".into(),
            ..Secret::default()
        };
        assert!(target(&q, &bad).is_err());
        assert!(in_use(&ns, "db", &[]).is_ok());
        let e = in_use(&ns, "db", &["f.dev".into()]).unwrap_err();
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(missing("x").to_string(), "unable to find secret: x");
    }
}
