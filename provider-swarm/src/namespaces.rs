//! Namespaces on Swarm: provider-swarm's [`NamespaceBackend`] (the routes, request parsing,
//! statuses and the rules of which namespaces exist are `ferry-provider-core`'s).
//!
//! provider-swarm keeps all its state in Swarm, so a namespace created (or updated) through
//! the API is a Swarm **config** labelled as [`crate::objects`] says (instance, namespace,
//! kind `namespace`, a version), its data the JSON `{name, labels, annotations}`. Configs are
//! immutable: an update creates the next version and removes the old one. Implicit
//! namespaces are those of the instance's services; a namespace's secrets are its Swarm
//! secrets. Changes hold the provider's change lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use bollard::models::ConfigSpec;
use bollard::query_parameters::ListConfigsOptionsBuilder;
use ferry_proto::{FunctionNamespace, Name};
use ferry_provider_core::NamespaceBackend;
use ferry_provider_core::namespaces as rules;

use crate::error::SwarmError;
use crate::objects::{self, NAMESPACE, Versioned};
use crate::provider::SwarmProvider;

/// A stored namespace: its current config and what it holds.
type Stored = BTreeMap<String, (Versioned, FunctionNamespace)>;

impl SwarmProvider {
    /// Every version of every namespace config of this instance, with its data when
    /// readable.
    async fn namespace_configs(&self) -> Result<Vec<(Versioned, Option<String>)>, SwarmError> {
        let filters = HashMap::from([(
            "label",
            objects::filters(&self.config.instance, NAMESPACE, None),
        )]);
        let options = ListConfigsOptionsBuilder::default()
            .filters(&filters)
            .build();
        let configs = self.docker().list_configs(Some(options)).await?;
        Ok(configs
            .into_iter()
            .filter_map(|c| {
                let spec = c.spec?;
                let v = objects::read(NAMESPACE, c.id, spec.name, spec.labels.as_ref())?;
                Some((v, spec.data))
            })
            .collect())
    }

    /// The stored namespaces (current versions), by name; unreadable ones are logged and
    /// skipped.
    async fn stored_namespaces(&self) -> Result<Stored, SwarmError> {
        let all = self.namespace_configs().await?;
        let mut data: HashMap<String, Option<String>> = HashMap::new();
        let mut versions = Vec::new();
        for (v, d) in all {
            data.insert(v.id.clone(), d);
            versions.push(v);
        }
        let (current, _) = objects::newest(versions);
        let mut out = BTreeMap::new();
        for ((_, name), v) in current {
            let raw = match data.remove(&v.id).flatten() {
                Some(raw) => Some(raw),
                None => self
                    .docker()
                    .inspect_config(&v.id)
                    .await?
                    .spec
                    .and_then(|s| s.data),
            };
            match raw.as_deref().and_then(decode).filter(|ns| ns.name == name) {
                Some(ns) => {
                    out.insert(name, (v, ns));
                }
                None => {
                    tracing::warn!(config = %v.swarm_name, "ignoring an unreadable namespace config")
                }
            }
        }
        Ok(out)
    }

    /// Creates version `version` of namespace `name` holding `ns`.
    async fn write_namespace(
        &self,
        name: &Name,
        ns: &FunctionNamespace,
        version: u64,
    ) -> Result<(), SwarmError> {
        let instance = &self.config.instance;
        let json = serde_json::to_vec(ns).map_err(|e| SwarmError::BadRequest(e.to_string()))?;
        let spec = ConfigSpec {
            name: Some(objects::swarm_name(
                &format!("ns-{name}-{instance}"),
                version,
            )),
            labels: Some(objects::labels_of(
                instance,
                NAMESPACE,
                name.as_str(),
                name.as_str(),
                version,
            )),
            data: Some(base64::engine::general_purpose::STANDARD.encode(json)),
            ..Default::default()
        };
        self.docker().create_config(spec).await?;
        Ok(())
    }

    /// Removes every version of namespace `name` (all of them when `keep` is `None`, else
    /// all older than `keep`).
    async fn remove_namespace_versions(
        &self,
        name: &Name,
        keep: Option<u64>,
    ) -> Result<(), SwarmError> {
        for (v, _) in self.namespace_configs().await? {
            if v.name == name.as_str() && keep.is_none_or(|k| v.version < k) {
                match self.docker().delete_config(&v.id).await {
                    Ok(())
                    | Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Whether `name` was created (is stored), and whether functions are deployed in it.
    async fn stored_and_holding(&self, name: &Name) -> Result<(bool, bool), SwarmError> {
        let stored = self.stored_namespaces().await?.contains_key(name.as_str());
        let holds = !self.functions_in(name).await?.is_empty();
        Ok((stored, holds))
    }

    /// The names of the functions deployed in `ns`.
    async fn functions_in(&self, ns: &Name) -> Result<Vec<String>, SwarmError> {
        let (services, _) = self.engine.services(None).await?;
        Ok(services
            .into_iter()
            .filter(|s| s.function.namespace == *ns)
            .map(|s| s.function.name.to_string())
            .collect())
    }
}

fn decode(raw: &str) -> Option<FunctionNamespace> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl NamespaceBackend for SwarmProvider {
    async fn namespace_names(self: &Arc<Self>) -> Result<Vec<String>, SwarmError> {
        let stored = self.stored_namespaces().await?;
        let (services, _) = self.engine.services(None).await?;
        let with_functions: BTreeSet<String> = services
            .into_iter()
            .map(|s| s.function.namespace.to_string())
            .collect();
        Ok(rules::names(stored.into_keys(), with_functions))
    }

    async fn namespace(
        self: &Arc<Self>,
        name: &Name,
    ) -> Result<Option<FunctionNamespace>, SwarmError> {
        let stored = self.stored_namespaces().await?.remove(name.as_str());
        let holds = !self.functions_in(name).await?.is_empty();
        Ok(rules::visible(name, stored.map(|(_, ns)| ns), holds))
    }

    async fn create_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let (stored, holds) = self.stored_and_holding(name).await?;
        rules::check_create(name, stored, holds)?;
        // Versions left unreadable would hide this one: start after them.
        let after = self.newest_version(name).await?;
        self.write_namespace(name, &ns, after + 1).await
    }

    async fn update_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let (stored, holds) = self.stored_and_holding(name).await?;
        rules::check_update(name, stored, holds)?;
        let version = self.newest_version(name).await? + 1;
        self.write_namespace(name, &ns, version).await?;
        self.remove_namespace_versions(name, Some(version)).await
    }

    async fn delete_namespace(self: &Arc<Self>, name: &Name) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let stored = self.stored_namespaces().await?.contains_key(name.as_str());
        let functions = self.functions_in(name).await?;
        let secrets: BTreeSet<String> = self
            .stored_secrets(Some(name.as_str()))
            .await?
            .into_iter()
            .map(|v| v.name)
            .collect();
        let secrets: Vec<String> = secrets.into_iter().collect();
        rules::check_delete(name, stored, &functions, &secrets)?;
        self.remove_namespace_versions(name, None).await
    }
}

impl SwarmProvider {
    /// The highest version of namespace `name` in Swarm, readable or not (0: none).
    async fn newest_version(&self, name: &Name) -> Result<u64, SwarmError> {
        Ok(self
            .namespace_configs()
            .await?
            .into_iter()
            .filter(|(v, _)| v.name == name.as_str())
            .map(|(v, _)| v.version)
            .max()
            .unwrap_or(0))
    }
}
