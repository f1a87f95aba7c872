//! Namespaces on Docker: what provider-docker's [`ferry_provider_core::NamespaceBackend`] (in
//! [`crate::api`]) works on. The routes, request
//! parsing, statuses and the rules of which namespaces exist are `ferry-provider-core`'s
//! ([`ferry_provider_core::namespaces`]); this module keeps the created ones.
//!
//! On Docker a namespace is a name: the functions of `dev` are containers labelled
//! `com.openfaas.namespace=dev` and its secrets live in `<data_dir>/secrets/dev/`. A namespace
//! created (or updated) with the API is kept with its labels and annotations in
//! `<data_dir>/namespaces/<name>.json` (folder `0700`, files `0600`, written to a temporary
//! file and renamed into place), so it survives restarts. One lock serialises changes, so two
//! creates of one namespace never both succeed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ferry_proto::{FunctionNamespace, Name};
use ferry_provider_core::namespaces::{self as rules};

use crate::error::ProviderError;
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
        let stored = self.lock().get(name).cloned();
        rules::visible(name, stored, holds_functions)
    }

    /// Every namespace: the default one first, then the created ones and `with_functions`
    /// (those holding functions), sorted, each once.
    pub fn names(&self, with_functions: impl IntoIterator<Item = String>) -> Vec<String> {
        let stored: Vec<String> = self.lock().keys().map(Name::to_string).collect();
        rules::names(stored, with_functions)
    }

    /// Creates `name` with `ns`; `409` if it exists, created or implicit.
    pub fn create(
        &self,
        name: &Name,
        ns: FunctionNamespace,
        holds_functions: bool,
    ) -> Result<(), ProviderError> {
        self.put(name, ns, |created| {
            rules::check_create(name, created, holds_functions)
        })
    }

    /// Replaces the labels and annotations of `name`; `404` if it does not exist. An implicit
    /// namespace (or the default one) is kept from then on, as a created one is.
    pub fn update(
        &self,
        name: &Name,
        ns: FunctionNamespace,
        holds_functions: bool,
    ) -> Result<(), ProviderError> {
        self.put(name, ns, |created| {
            rules::check_update(name, created, holds_functions)
        })
    }

    /// Stores `ns` as `name` if `allowed` (told whether `name` was created) says so.
    fn put(
        &self,
        name: &Name,
        ns: FunctionNamespace,
        allowed: impl FnOnce(bool) -> Result<(), ferry_provider_core::ApiError>,
    ) -> Result<(), ProviderError> {
        let mut created = self.lock();
        allowed(created.contains_key(name))?;
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
        rules::check_delete(name, created.contains_key(name), functions, secrets)?;
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

#[cfg(test)]
mod tests;
