//! Secrets stored on disk and mounted into functions: what provider-docker's
//! [`ferry_provider_core::SecretBackend`] (in [`crate::api`]) works on; the `/system/secrets`
//! routes, parsing and statuses are `ferry-provider-core`'s [`ferry_provider_core::secrets`].
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

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_proto::{FunctionRef, Name};
use ferry_provider_core::ApiError;
use ferry_provider_core::secrets::{describe, in_use, missing};
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::error::ProviderError;
use crate::store::Store;

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

    /// Writes a new secret; `409` ([`ApiError::SecretExists`]) if it is there already.
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
                Err(ApiError::SecretExists(describe(ns, name)).into())
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
                Err(ApiError::SecretNotFound(describe(ns, name)).into())
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
        if let Some(m) = names.iter().find(|n| !self.exists(&f.namespace, n)) {
            return Err(missing(m).into());
        }
        Ok(guard)
    }

    /// Deletes a secret no deployed function (in `store`) names; 409 if one does.
    pub async fn delete(&self, ns: &Name, name: &str, store: &Store) -> Result<(), ProviderError> {
        let not_found = || ProviderError::from(ApiError::SecretNotFound(describe(ns, name)));
        let _exclusive = self.in_use.write().await;
        if !self.exists(ns, name) {
            return Err(not_found());
        }
        let users: Vec<String> = store
            .list(Some(ns.as_str()))
            .into_iter()
            .filter(|(_, want)| want.deployment.secrets.iter().any(|s| s == name))
            .map(|(f, _)| f.to_string())
            .collect();
        in_use(ns, name, &users)?;
        match std::fs::remove_file(self.path(ns, name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(e.into()),
        }
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
            Err(ProviderError::Api(ApiError::SecretExists(_)))
        ));
        secrets.update(&ns, "db", b"three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(inode(&path), before, "updated in place");
        assert!(matches!(
            secrets.update(&ns, "nope", b"x"),
            Err(ProviderError::Api(ApiError::SecretNotFound(_)))
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
}
