//! Desired state: which functions exist, their spec, and how many replicas they should have.
//!
//! Docker holds what *is* running; this store holds what *should* run. It is kept in memory
//! and written through to `<data_dir>/functions/<namespace>/<name>.json` (owner-only
//! permissions, atomic rename), so a restarted provider knows every function and replica
//! count, including functions scaled to zero, and which stopped or frozen container such a
//! function keeps parked for its next start.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_proto::{FunctionDeployment, FunctionRef};
use serde::{Deserialize, Serialize};

/// One function's desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    /// The deployment as last accepted.
    pub deployment: FunctionDeployment,
    /// Desired replicas.
    pub replicas: u64,
    /// Bumped on every update; containers of older generations are replaced.
    pub generation: u64,
    /// When the function was first deployed (RFC 3339).
    pub created_at: String,
    /// At zero replicas: the stopped container kept to be started again on the next scale-up
    /// (faster than creating one). Of the current generation; cleared when it is started or
    /// discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// Set while the parked container is frozen (paused) rather than stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
}

/// A frozen parked container: since when, and where its watchdog listens (a paused
/// container keeps its address, so a caller can probe it as soon as it is thawed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frozen {
    /// When it was frozen, Unix seconds.
    pub since: u64,
    /// Its watchdog's `host:port`, as the endpoint mode gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The set of functions, in memory and on disk.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    functions: Mutex<BTreeMap<FunctionRef, Desired>>,
    locks: Mutex<BTreeMap<FunctionRef, Arc<tokio::sync::Mutex<()>>>>,
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir` and loads every function.
    pub fn open(data_dir: &Path) -> io::Result<Store> {
        let dir = data_dir.join("functions");
        create_private_dir(&dir)?;
        let mut functions = BTreeMap::new();
        for ns in std::fs::read_dir(&dir)? {
            let ns = ns?;
            if !ns.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(ns.path())? {
                let path = file?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let loaded = std::fs::read(&path).and_then(|bytes| {
                    serde_json::from_slice::<Desired>(&bytes).map_err(io::Error::other)
                });
                match loaded {
                    Ok(d) => match d.deployment.validate() {
                        Ok(r) => {
                            functions.insert(r, d);
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring invalid stored function")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable stored function")
                    }
                }
            }
        }
        tracing::info!(dir = %dir.display(), functions = functions.len(), "loaded desired state");
        Ok(Store {
            dir,
            functions: Mutex::new(functions),
            locks: Mutex::new(BTreeMap::new()),
        })
    }

    /// A lock that serialises changes to one function (deploy, update, scale, delete,
    /// reconcile), so concurrent calls never race on its containers.
    pub fn lock_for(&self, f: &FunctionRef) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("store lock poisoned")
            .entry(f.clone())
            .or_default()
            .clone()
    }

    /// The desired state of `f`.
    pub fn get(&self, f: &FunctionRef) -> Option<Desired> {
        self.functions
            .lock()
            .expect("store lock poisoned")
            .get(f)
            .cloned()
    }

    /// Every function, optionally only those of one namespace.
    pub fn list(&self, namespace: Option<&str>) -> Vec<(FunctionRef, Desired)> {
        let functions = self.functions.lock().expect("store lock poisoned");
        functions
            .iter()
            .filter(|(r, _)| namespace.is_none_or(|ns| r.namespace.as_str() == ns))
            .map(|(r, d)| (r.clone(), d.clone()))
            .collect()
    }

    /// The namespaces that hold at least one function.
    pub fn namespaces(&self) -> Vec<String> {
        let functions = self.functions.lock().expect("store lock poisoned");
        let set: std::collections::BTreeSet<String> =
            functions.keys().map(|r| r.namespace.to_string()).collect();
        set.into_iter().collect()
    }

    /// Writes `d` as the desired state of `f` (disk first, then memory).
    pub fn put(&self, f: &FunctionRef, d: Desired) -> io::Result<()> {
        let ns_dir = self.dir.join(f.namespace.as_str());
        create_private_dir(&ns_dir)?;
        let path = ns_dir.join(format!("{}.json", f.name));
        let tmp = ns_dir.join(format!(".{}.json.tmp", f.name));
        let bytes = serde_json::to_vec_pretty(&d).map_err(io::Error::other)?;
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        self.functions
            .lock()
            .expect("store lock poisoned")
            .insert(f.clone(), d);
        Ok(())
    }

    /// Forgets `f`. Returns its last desired state, if it existed.
    pub fn remove(&self, f: &FunctionRef) -> io::Result<Option<Desired>> {
        let path = self
            .dir
            .join(f.namespace.as_str())
            .join(format!("{}.json", f.name));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(self
            .functions
            .lock()
            .expect("store lock poisoned")
            .remove(f))
    }
}

/// Creates `dir` (and its parents) with mode `0700`, and sets `0700` on it if it existed.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `bytes` to `path` (mode `0600`) and syncs it; callers rename it into place.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(name: &str) -> (FunctionRef, Desired) {
        let deployment = FunctionDeployment {
            service: name.into(),
            image: "img:1".into(),
            ..Default::default()
        };
        let r = deployment.validate().unwrap();
        (
            r,
            Desired {
                deployment,
                replicas: 2,
                generation: 1,
                created_at: "t".into(),
                parked: Some("c0ffee".into()),
                frozen: Some(Frozen {
                    since: 1_700_000_000,
                    address: Some("127.0.0.1:32768".into()),
                }),
            },
        )
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, da) = desired("a");
        let (b, db) = desired("b");
        store.put(&a, da.clone()).unwrap();
        store.put(&b, db).unwrap();
        store.remove(&b).unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.get(&a), Some(da));
        assert_eq!(reopened.get(&b), None);
        assert_eq!(reopened.namespaces(), vec!["openfaas-fn".to_string()]);
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir.path().join("functions")), 0o700);
        assert_eq!(
            mode(&dir.path().join("functions/openfaas-fn/a.json")),
            0o600
        );
    }
}
