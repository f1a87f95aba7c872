//! Secrets: `GET/POST/PUT/DELETE /system/secrets`, stored on disk, mounted into functions.
//!
//! A secret is the file `<data_dir>/secrets/<namespace>/<name>` holding its bytes. The
//! folders are `0700`, so no other user of the host can reach the files; the files themselves
//! are `0644`, because a function may run as any user inside its container and reads its
//! secret through a read-only bind mount of that one file
//! (`<secrets_host_dir>/<namespace>/<name>` → `/var/openfaas/secrets/<name>`), which exposes
//! the file but none of the folders above it.
//!
//! Updates rewrite the file in place (same inode), so running replicas read the new value at
//! once: a bind mount of a single file keeps pointing at the inode it was made from, and a
//! file replaced by rename would stay invisible to them. A secret named by a deployed
//! function cannot be deleted (409): its next replica could not start.
//!
//! Values are never returned, and never logged: only names and namespaces are.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_proto::{FunctionRef, Name, Secret};
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::api::{namespace_param, parse_json};
use crate::error::ProviderError;
use crate::provider::Provider;

/// The secrets on disk.
#[derive(Debug)]
pub struct Secrets {
    dir: PathBuf,
    /// Serialises writes, so two updates of one secret never interleave.
    writes: Mutex<()>,
    /// Deploys and updates hold it shared from checking their secrets until their containers
    /// exist; deleting a secret holds it exclusively, so it never removes one being mounted.
    in_use: RwLock<()>,
}

impl Secrets {
    /// Opens (creating if needed) `<data_dir>/secrets`.
    pub fn open(data_dir: &Path) -> io::Result<Secrets> {
        let dir = data_dir.join("secrets");
        private_dir(&dir)?;
        tracing::info!(dir = %dir.display(), "secrets folder ready");
        Ok(Secrets {
            dir,
            writes: Mutex::new(()),
            in_use: RwLock::new(()),
        })
    }

    fn path(&self, ns: &Name, name: &str) -> PathBuf {
        self.dir.join(ns.as_str()).join(name)
    }

    /// Names of the secrets of a namespace, sorted.
    pub fn names(&self, ns: &Name) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(self.dir.join(ns.as_str())) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if entry.file_type()?.is_file()
                && ferry_proto::name::validate_secret_name(&name).is_ok()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether the secret exists.
    pub fn exists(&self, ns: &Name, name: &str) -> bool {
        self.path(ns, name).is_file()
    }

    /// Writes a new secret; [`ProviderError::SecretExists`] if it is there already.
    pub fn create(&self, ns: &Name, name: &str, value: &[u8]) -> Result<(), ProviderError> {
        let _writing = self.writes.lock().expect("secret writes poisoned");
        private_dir(&self.dir.join(ns.as_str()))?;
        let path = self.path(ns, name);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path);
        match opened {
            Ok(file) => write_value(file, &path, value).inspect_err(|_| {
                // Leave no half-written secret behind.
                let _ = std::fs::remove_file(&path);
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(ProviderError::SecretExists(describe(ns, name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the value of an existing secret, in place.
    pub fn update(&self, ns: &Name, name: &str, value: &[u8]) -> Result<(), ProviderError> {
        let _writing = self.writes.lock().expect("secret writes poisoned");
        let path = self.path(ns, name);
        match std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
        {
            Ok(file) => write_value(file, &path, value),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ProviderError::SecretNotFound(describe(ns, name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that every secret `f` names exists (400 `unable to find secret: <name>`
    /// otherwise). None of them can be deleted while the returned guard lives.
    pub async fn require(
        &self,
        f: &FunctionRef,
        names: &[String],
    ) -> Result<RwLockReadGuard<'_, ()>, ProviderError> {
        let guard = self.in_use.read().await;
        if let Some(missing) = names.iter().find(|n| !self.exists(&f.namespace, n)) {
            return Err(ProviderError::BadRequest(format!(
                "unable to find secret: {missing}"
            )));
        }
        Ok(guard)
    }
}

fn write_value(mut file: std::fs::File, path: &Path, value: &[u8]) -> Result<(), ProviderError> {
    // The mode given at creation is reduced by the umask; set it exactly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    file.write_all(value)?;
    file.sync_all()?;
    Ok(())
}

fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn describe(ns: &Name, name: &str) -> String {
    format!("{name} in namespace {ns}")
}

/// The secrets routes.
pub(crate) fn routes() -> Router<Arc<Provider>> {
    Router::new().route(
        ferry_proto::routes::SYSTEM_SECRETS,
        get(list).post(create).put(update).delete(delete),
    )
}

type Params = Query<HashMap<String, String>>;

/// `GET /system/secrets[?namespace=]`: names and namespaces, never values.
async fn list(State(p): State<Arc<Provider>>, Query(q): Params) -> Result<Response, ProviderError> {
    let ns = Name::new(namespace_param(&q, None)?)?;
    let secrets: Vec<Secret> = p
        .secrets
        .names(&ns)?
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
fn target(q: &HashMap<String, String>, s: &Secret) -> Result<(Name, String), ProviderError> {
    let ns = Name::new(namespace_param(q, Some(&s.namespace))?)?;
    let name = s.name.trim();
    if name.is_empty() {
        return Err(ProviderError::BadRequest(
            "the \"name\" field is required".into(),
        ));
    }
    ferry_proto::name::validate_secret_name(name)
        .map_err(|e| ProviderError::BadRequest(format!("invalid secret name: {e}")))?;
    Ok((ns, name.to_string()))
}

fn value_of(s: &Secret) -> Result<&[u8], ProviderError> {
    match s.bytes() {
        [] => Err(ProviderError::BadRequest(
            "the secret has no value: set \"value\" (text) or \"rawValue\" (base64)".into(),
        )),
        bytes => Ok(bytes),
    }
}

/// Parses a secret body. Unlike other bodies, a parse error does not quote serde's message,
/// which can repeat part of the value; it says only where parsing stopped.
fn parse_secret(body: &[u8]) -> Result<Secret, ProviderError> {
    parse_json::<serde_json::Value>(body, SECRET_BODY)?;
    serde_json::from_slice(body).map_err(|e| {
        ProviderError::BadRequest(format!(
            "invalid secret at line {} column {}: expected {SECRET_BODY}, \"rawValue\" being base64",
            e.line(),
            e.column()
        ))
    })
}

const SECRET_BODY: &str = "{\"name\": ..., \"value\": ...}";

/// `POST /system/secrets` → 201; 409 if it exists.
async fn create(
    State(p): State<Arc<Provider>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    let s = parse_secret(&body)?;
    let (ns, name) = target(&q, &s)?;
    p.secrets.create(&ns, &name, value_of(&s)?)?;
    tracing::info!(secret = %name, namespace = %ns, "created secret");
    Ok(StatusCode::CREATED)
}

/// `PUT /system/secrets` → 200; 404 if unknown.
async fn update(
    State(p): State<Arc<Provider>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    let s = parse_secret(&body)?;
    let (ns, name) = target(&q, &s)?;
    p.secrets.update(&ns, &name, value_of(&s)?)?;
    tracing::info!(secret = %name, namespace = %ns, "updated secret");
    Ok(StatusCode::OK)
}

/// `DELETE /system/secrets` (body `{"name","namespace"}`, or `?name=&namespace=`) → 200;
/// 404 if unknown; 409 while a deployed function names it.
async fn delete(
    State(p): State<Arc<Provider>>,
    Query(q): Params,
    body: Bytes,
) -> Result<StatusCode, ProviderError> {
    let s: Secret = if body.iter().all(u8::is_ascii_whitespace) {
        Secret {
            name: q.get("name").cloned().unwrap_or_default(),
            ..Secret::default()
        }
    } else {
        parse_secret(&body)?
    };
    let (ns, name) = target(&q, &s)?;
    let _exclusive = p.secrets.in_use.write().await;
    if !p.secrets.exists(&ns, &name) {
        return Err(ProviderError::SecretNotFound(describe(&ns, &name)));
    }
    let users: Vec<String> = p
        .store
        .list(Some(ns.as_str()))
        .into_iter()
        .filter(|(_, want)| want.deployment.secrets.contains(&name))
        .map(|(f, _)| f.to_string())
        .collect();
    if !users.is_empty() {
        return Err(ProviderError::SecretInUse {
            secret: describe(&ns, &name),
            functions: users.join(", "),
        });
    }
    match std::fs::remove_file(p.secrets.path(&ns, &name)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ProviderError::SecretNotFound(describe(&ns, &name)));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(secret = %name, namespace = %ns, "deleted secret");
    // 200, as faasd answers: faas-cli takes only 200 and 202 for a removed secret.
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn create_update_list_and_permissions() {
        let data = tempfile::tempdir().unwrap();
        let secrets = Secrets::open(data.path()).unwrap();
        let ns = Name::default_namespace();
        secrets.create(&ns, "db", b"one").unwrap();
        let path = data.path().join("secrets/openfaas-fn/db");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&path);
        assert!(matches!(
            secrets.create(&ns, "db", b"two"),
            Err(ProviderError::SecretExists(_))
        ));
        secrets.update(&ns, "db", b"three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(inode(&path), before, "updated in place");
        assert!(matches!(
            secrets.update(&ns, "nope", b"x"),
            Err(ProviderError::SecretNotFound(_))
        ));
        assert_eq!(secrets.names(&ns).unwrap(), vec!["db"]);
        assert!(
            secrets
                .names(&Name::new("other").unwrap())
                .unwrap()
                .is_empty()
        );
        assert_eq!(mode(&data.path().join("secrets")), 0o700);
        assert_eq!(mode(&data.path().join("secrets/openfaas-fn")), 0o700);
        assert_eq!(mode(&path), 0o644);

        let f = FunctionRef::new(Name::new("f").unwrap(), ns.clone());
        assert!(secrets.require(&f, &["db".into()]).await.is_ok());
        let e = secrets
            .require(&f, &["db".into(), "api-key".into()])
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "unable to find secret: api-key");
    }

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
}
