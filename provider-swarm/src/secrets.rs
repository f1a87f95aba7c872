//! Function secrets as Swarm secrets: provider-swarm's [`SecretBackend`] (the
//! `/system/secrets` routes, parsing and statuses are `ferry-provider-core`'s).
//!
//! A secret `<name>` of namespace `<ns>` is a Swarm secret labelled as [`crate::objects`]
//! says (instance, namespace, kind `secret`, the OpenFaaS name, a version). A service naming
//! it references its current version with the target `/var/openfaas/secrets/<name>`
//! ([`crate::spec::secret_reference`]), so the function reads it where OpenFaaS puts it.
//!
//! Swarm secrets are immutable, so an **update** creates version `n+1`, points every
//! service of this instance that references version `n` (or an older one) at it (Swarm then
//! rolls the service: its running tasks are *replaced* by tasks that see the new value,
//! unlike provider-docker where the file changes under running replicas), and removes the
//! older versions. A version Swarm does not let go of yet is removed later by the reconcile
//! loop.
//! Deleting a secret a deployed function names is refused (`409`). Every change holds the
//! provider's change lock, so deploys never race a delete or an update. Values are sent to
//! Swarm only, never returned and never logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use bollard::models::SecretSpec;
use bollard::query_parameters::ListSecretsOptionsBuilder;
use ferry_proto::{FunctionRef, Name};
use ferry_provider_core::secrets::{describe, in_use, missing};
use ferry_provider_core::{ApiError, SecretBackend};

use crate::error::SwarmError;
use crate::objects::{self, SECRET, Versioned};
use crate::provider::SwarmProvider;
use crate::spec::secret_reference;

impl SwarmProvider {
    /// Every version of every secret of this instance (in `ns` only, when given).
    pub(crate) async fn stored_secrets(
        &self,
        ns: Option<&str>,
    ) -> Result<Vec<Versioned>, SwarmError> {
        let instance = &self.config.instance;
        let filters = HashMap::from([("label", objects::filters(instance, SECRET, ns))]);
        let options = ListSecretsOptionsBuilder::default()
            .filters(&filters)
            .build();
        let secrets = self.docker().list_secrets(Some(options)).await?;
        Ok(secrets
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                objects::read(SECRET, s.id, spec.name, spec.labels.as_ref())
            })
            .collect())
    }

    /// The current version of each secret of `ns`, by name.
    async fn current_secrets(&self, ns: &str) -> Result<BTreeMap<String, Versioned>, SwarmError> {
        let (current, _) = objects::newest(self.stored_secrets(Some(ns)).await?);
        Ok(current.into_iter().map(|((_, n), v)| (n, v)).collect())
    }

    /// The current versions of the secrets `names` of `f`'s namespace, each once; `400
    /// unable to find secret: <name>` for one that does not exist.
    pub(crate) async fn secret_versions(
        &self,
        f: &FunctionRef,
        names: &[String],
    ) -> Result<Vec<Versioned>, SwarmError> {
        let mut current = self.current_secrets(f.namespace.as_str()).await?;
        let mut wanted: Vec<&String> = names.iter().collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|n| current.remove(n).ok_or_else(|| missing(n).into()))
            .collect()
    }

    /// Creates version `version` of secret `name` of `ns` holding `value`.
    async fn create_version(
        &self,
        ns: &Name,
        name: &str,
        version: u64,
        value: &[u8],
    ) -> Result<Versioned, SwarmError> {
        let instance = &self.config.instance;
        let swarm_name = objects::swarm_name(&format!("{name}-{ns}-{instance}"), version);
        let spec = SecretSpec {
            name: Some(swarm_name.clone()),
            labels: Some(objects::labels_of(
                instance,
                SECRET,
                ns.as_str(),
                name,
                version,
            )),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        };
        let created = self.docker().create_secret(spec).await?;
        Ok(Versioned {
            id: created.id,
            swarm_name,
            namespace: ns.to_string(),
            name: name.to_string(),
            version,
        })
    }

    /// Points every service of this instance that references one of the versions `old` at
    /// `new` (Swarm rolls their tasks); returns how many were changed.
    async fn roll(&self, old: &BTreeSet<String>, new: &Versioned) -> Result<usize, SwarmError> {
        let (services, _) = self.engine.services(None).await?;
        let mut rolled = 0;
        for s in services {
            let mut spec = s.spec.clone();
            let refs = spec
                .task_template
                .as_mut()
                .and_then(|t| t.container_spec.as_mut())
                .and_then(|c| c.secrets.as_mut());
            let Some(refs) = refs else { continue };
            let mut changed = false;
            for r in refs.iter_mut() {
                if r.secret_id.as_ref().is_some_and(|id| old.contains(id)) {
                    *r = secret_reference(new);
                    changed = true;
                }
            }
            if changed {
                self.engine.update(&s.id, s.version, spec).await?;
                tracing::info!(function = %s.function, secret = %new.name, "rolling the function onto the secret's new version");
                rolled += 1;
            }
        }
        Ok(rolled)
    }

    /// Removes `v` from Swarm; one still in use (or gone) is left, with a log line.
    pub(crate) async fn remove_secret_version(&self, v: &Versioned) {
        if let Err(e) = self.docker().delete_secret(&v.id).await {
            tracing::debug!(secret = %v.name, version = v.version, error = %e, "old secret version not removed yet");
        }
    }

    /// Removes the secret versions no longer current (left by an update whose tasks still
    /// held them): every `reconcile_interval`, under the change lock.
    pub(crate) async fn remove_stale_secrets(&self) {
        match self.stored_secrets(None).await {
            Ok(all) => {
                for v in objects::newest(all).1 {
                    self.remove_secret_version(&v).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list secrets to find old versions"),
        }
    }
}

impl SecretBackend for SwarmProvider {
    async fn secret_names(self: &Arc<Self>, ns: &Name) -> Result<Vec<String>, SwarmError> {
        Ok(self
            .current_secrets(ns.as_str())
            .await?
            .into_keys()
            .collect())
    }

    async fn create_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        if self.current_secrets(ns.as_str()).await?.contains_key(name) {
            return Err(ApiError::SecretExists(describe(ns, name)).into());
        }
        self.create_version(ns, name, 1, value).await.map(|_| ())
    }

    async fn update_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let versions: Vec<Versioned> = self
            .stored_secrets(Some(ns.as_str()))
            .await?
            .into_iter()
            .filter(|v| v.name == name)
            .collect();
        let Some(newest) = versions.iter().map(|v| v.version).max() else {
            return Err(ApiError::SecretNotFound(describe(ns, name)).into());
        };
        let new = self.create_version(ns, name, newest + 1, value).await?;
        // Every older version, so services a failed update left behind are rolled too.
        let old: BTreeSet<String> = versions.iter().map(|v| v.id.clone()).collect();
        let rolled = self.roll(&old, &new).await?;
        tracing::info!(secret = %name, namespace = %ns, version = new.version, functions = rolled, "new secret version");
        for v in &versions {
            self.remove_secret_version(v).await;
        }
        Ok(())
    }

    async fn delete_secret(self: &Arc<Self>, ns: &Name, name: &str) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let versions: Vec<Versioned> = self
            .stored_secrets(Some(ns.as_str()))
            .await?
            .into_iter()
            .filter(|v| v.name == name)
            .collect();
        if versions.is_empty() {
            return Err(ApiError::SecretNotFound(describe(ns, name)).into());
        }
        let (services, _) = self.engine.services(None).await?;
        let users: Vec<String> = services
            .iter()
            .filter(|s| s.function.namespace == *ns)
            .filter(|s| s.deployment.secrets.iter().any(|n| n == name))
            .map(|s| s.function.to_string())
            .collect();
        in_use(ns, name, &users)?;
        for v in &versions {
            match self.docker().delete_secret(&v.id).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
