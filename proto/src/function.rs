//! Function deployment, status, scaling and deletion bodies of the faas-provider API.
//!
//! Field names are OpenFaaS's camelCase. As in Go's `omitempty`, zero values (empty strings,
//! maps and lists, `false`, `0`) are left out when serialising and default when missing, so a
//! missing `replicas` means 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::name::{FunctionRef, Name, NameError, validate_secret_name};

/// The body of `POST` and `PUT /system/functions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeployment {
    /// Function name (required).
    #[serde(default)]
    pub service: String,
    /// Container image reference (required).
    #[serde(default)]
    pub image: String,
    /// Namespace; the provider's default (`openfaas-fn`) when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The watchdog's `fprocess`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env_process: String,
    /// Environment variables of the function's process.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub env_vars: BTreeMap<String, String>,
    /// Scheduling constraints (provider-specific).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<String>,
    /// Secret names, mounted at `/var/openfaas/secrets/<name>`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<String>,
    /// Labels (scaling settings live here: `com.openfaas.scale.*`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`com.openfaas.queue`, `com.openfaas.retry.*`, ...).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<FunctionResources>,
    /// Resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<FunctionResources>,
    /// Only `/tmp` is writable when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_root_filesystem: bool,
}

/// Memory and CPU figures, as Kubernetes quantities (`128M`, `40Mi`, `100m`, `0.5`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionResources {
    /// Memory, e.g. `128M` or `40Mi`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory: String,
    /// CPU, e.g. `100m` or `0.5`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu: String,
    /// Other resources (`nvidia.com/gpu`, ...), kept as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// A deployment that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    /// `service` is missing.
    #[error("the \"service\" field (the function name) is required")]
    MissingService,
    /// `service` is not a valid name.
    #[error("invalid function name: {0}")]
    InvalidService(NameError),
    /// `namespace` is not a valid name.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(NameError),
    /// `image` is missing.
    #[error("the \"image\" field is required")]
    MissingImage,
    /// `image` contains characters no image reference has.
    #[error("invalid image reference {0:?}")]
    InvalidImage(String),
    /// A secret name is not valid.
    #[error("invalid secret name: {0}")]
    InvalidSecret(NameError),
}

impl FunctionDeployment {
    /// Checks the fields every provider needs and returns the function's reference.
    pub fn validate(&self) -> Result<FunctionRef, DeploymentError> {
        if self.service.trim().is_empty() {
            return Err(DeploymentError::MissingService);
        }
        let name = Name::new(self.service.as_str()).map_err(DeploymentError::InvalidService)?;
        let namespace = if self.namespace.is_empty() {
            Name::default_namespace()
        } else {
            Name::new(self.namespace.as_str()).map_err(DeploymentError::InvalidNamespace)?
        };
        if self.image.trim().is_empty() {
            return Err(DeploymentError::MissingImage);
        }
        let image_ok = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
        if !self.image.chars().all(image_ok) || self.image.starts_with(['-', '.', '/', ':']) {
            return Err(DeploymentError::InvalidImage(self.image.clone()));
        }
        for s in &self.secrets {
            validate_secret_name(s).map_err(DeploymentError::InvalidSecret)?;
        }
        Ok(FunctionRef::new(name, namespace))
    }

    /// The process environment: `envVars` plus `fprocess` from `envProcess`. An `fprocess`
    /// key in `envVars` wins, as in faasd.
    pub fn process_env(&self) -> BTreeMap<String, String> {
        let mut env = self.env_vars.clone();
        if !self.env_process.is_empty() {
            env.entry("fprocess".to_string())
                .or_insert_with(|| self.env_process.clone());
        }
        env
    }
}

/// One function as `GET /system/functions` and `GET /system/function/{name}` report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// Function name.
    pub name: String,
    /// Image reference.
    #[serde(default)]
    pub image: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The watchdog's `fprocess`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env_process: String,
    /// Environment variables.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub env_vars: BTreeMap<String, String>,
    /// Scheduling constraints.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<String>,
    /// Secret names.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<String>,
    /// Labels; always an object on the wire (`{}` when there are none), as OpenFaaS
    /// providers send it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Annotations; always an object on the wire, as OpenFaaS providers send it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<FunctionResources>,
    /// Resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<FunctionResources>,
    /// Only `/tmp` is writable when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_root_filesystem: bool,
    /// Completed invocations (filled in by the gateway).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub invocation_count: f64,
    /// Desired replicas.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub replicas: u64,
    /// Ready replicas.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub available_replicas: u64,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Resource usage, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<FunctionUsage>,
}

impl FunctionStatus {
    /// The status of `deployment` with the given replica counts.
    pub fn from_deployment(d: &FunctionDeployment, namespace: &str) -> Self {
        FunctionStatus {
            name: d.service.clone(),
            image: d.image.clone(),
            namespace: namespace.to_string(),
            env_process: d.env_process.clone(),
            env_vars: d.env_vars.clone(),
            constraints: d.constraints.clone(),
            secrets: d.secrets.clone(),
            labels: d.labels.clone(),
            annotations: d.annotations.clone(),
            limits: d.limits.clone(),
            requests: d.requests.clone(),
            read_only_root_filesystem: d.read_only_root_filesystem,
            ..FunctionStatus::default()
        }
    }
}

/// CPU and memory use of a function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUsage {
    /// CPU, in millicore-equivalents.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub cpu: f64,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub total_memory_bytes: f64,
    /// Ferry's: of `totalMemoryBytes`, what a frozen replica of a function at zero holds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub frozen_memory_bytes: f64,
}

/// The body of `POST /system/scale-function/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleServiceRequest {
    /// Function name (the path's name is used when this is empty).
    #[serde(default)]
    pub service_name: String,
    /// Desired replicas.
    #[serde(default)]
    pub replicas: u64,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Ferry's: scale only if the function has zero desired replicas, and then to at least
    /// its `com.openfaas.scale.min` (what a gateway holding calls asks for). OpenFaaS
    /// providers ignore it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub from_zero: bool,
}

/// How a function at zero replicas came back: the `X-Ferry-Wake` header of a scale answer
/// (ferry's), and the `tier` label of the cold-start metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wake {
    /// A frozen (paused) replica was unpaused.
    Frozen,
    /// A parked (stopped) container was started again.
    Stopped,
    /// A new container was created.
    New,
    /// The replica going to zero was still running (not yet frozen): it was kept.
    Warm,
}

impl Wake {
    /// The response header that carries it.
    pub const HEADER: &'static str = "x-ferry-wake";

    /// Its name in the header and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Wake::Frozen => "frozen",
            Wake::Stopped => "stopped",
            Wake::New => "new",
            Wake::Warm => "warm",
        }
    }

    /// Reads a header value; `None` for anything else.
    pub fn parse(s: &str) -> Option<Wake> {
        [Wake::Frozen, Wake::Stopped, Wake::New, Wake::Warm]
            .into_iter()
            .find(|w| w.as_str() == s)
    }
}

/// The body of `DELETE /system/functions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFunctionRequest {
    /// Function name.
    #[serde(default)]
    pub function_name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The replicas of one function and where to reach them (ferry's
/// `GET /system/endpoints/{name}`; the gateway's routing table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionEndpoints {
    /// Function name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Desired replicas.
    #[serde(default)]
    pub replicas: u64,
    /// Running replicas, ready or not.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// How the provider checks the replicas' readiness (callers probing a replica themselves
    /// use the same).
    #[serde(default)]
    pub probe: crate::probe::ReadinessProbe,
}

/// One replica's address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Replica (container) id.
    pub id: String,
    /// `host:port` the watchdog listens on.
    pub address: String,
    /// The replica answered its readiness probe (see [`crate::probe`]) at the last check.
    #[serde(default)]
    pub ready: bool,
}

pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}
