//! A function deployment as a Swarm service spec.
//!
//! The service is named `<name>-<namespace>-<instance>` (cut to 63 characters) and labelled
//! `com.openfaas.function`, `com.openfaas.namespace`, `com.ferry.instance`, the deployment's
//! labels and its annotations (`com.openfaas.annotations.<key>`); the deployment itself, as
//! accepted, is kept in the `com.ferry.deployment` label and the first deploy's time in
//! `com.ferry.created-at`, so Swarm holds the whole desired state. Tasks run the image by
//! its ID (resolved on the engine at deploy time: nothing is pulled), with `init`, the
//! process environment, memory/CPU limits and reservations, the deployment's placement
//! constraints, `read_only` root, on the functions overlay network, with endpoint mode
//! `dnsrr` (no virtual IP: the engine may have no IPVS). Each secret the deployment names is
//! a reference to the current version of its Swarm secret (see [`crate::secrets`]), mounted
//! at `/var/openfaas/secrets/<name>` (an absolute target: Swarm's default folder is
//! `/run/secrets`), owned by root and readable by every user (`0444`), as functions may run
//! as any user.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, ResourceObject,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use ferry_proto::{FunctionDeployment, FunctionRef, FunctionResources, labels};
use ferry_provider_core::quantity::{parse_cpu, parse_memory};

use crate::error::SwarmError;
use crate::objects::Versioned;

/// Service label holding the deployment as JSON.
pub const DEPLOYMENT_LABEL: &str = "com.ferry.deployment";
/// Service label holding the first deploy's time (RFC 3339).
pub const CREATED_LABEL: &str = "com.ferry.created-at";

/// What a service is made from besides the deployment.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The provider's instance.
    pub instance: &'a str,
    /// The functions overlay network.
    pub network: &'a str,
    /// The image's ID on the engine.
    pub image_id: &'a str,
    /// Stop grace period.
    pub stop_timeout: Duration,
    /// The current versions of the secrets the deployment names.
    pub secrets: &'a [Versioned],
}

/// The reference of a service to `secret`, mounted at `/var/openfaas/secrets/<name>`.
pub fn secret_reference(secret: &Versioned) -> TaskSpecContainerSpecSecrets {
    TaskSpecContainerSpecSecrets {
        file: Some(TaskSpecContainerSpecFile {
            name: Some(format!(
                "{}/{}",
                ferry_proto::secret::MOUNT_DIR,
                secret.name
            )),
            uid: Some("0".into()),
            gid: Some("0".into()),
            mode: Some(0o444),
        }),
        secret_id: Some(secret.id.clone()),
        secret_name: Some(secret.swarm_name.clone()),
    }
}

/// The service name of `f` for `instance`.
pub fn service_name(f: &FunctionRef, instance: &str) -> String {
    let mut name = format!("{}-{}-{instance}", f.name, f.namespace);
    name.truncate(63);
    name.trim_end_matches(['-', '.', '_']).to_string()
}

/// Checks limits and requests before anything is created.
pub fn check(d: &FunctionDeployment) -> Result<(), SwarmError> {
    resources(d).map(|_| ())
}

/// The service spec of `f` deployed as `d` with `replicas`.
pub fn service_spec(
    f: &FunctionRef,
    d: &FunctionDeployment,
    replicas: u64,
    created_at: &str,
    t: &Target<'_>,
) -> Result<ServiceSpec, SwarmError> {
    let mut task_labels: HashMap<String, String> = d.labels.clone().into_iter().collect();
    for (k, v) in &d.annotations {
        task_labels.insert(format!("{}{k}", labels::ANNOTATION_PREFIX), v.clone());
    }
    task_labels.insert(labels::FUNCTION.into(), f.name.to_string());
    task_labels.insert(labels::NAMESPACE.into(), f.namespace.to_string());
    task_labels.insert(labels::FERRY_INSTANCE.into(), t.instance.to_string());
    let mut service_labels = task_labels.clone();
    let json = serde_json::to_string(d).map_err(|e| SwarmError::BadRequest(e.to_string()))?;
    service_labels.insert(DEPLOYMENT_LABEL.into(), json);
    service_labels.insert(CREATED_LABEL.into(), created_at.to_string());
    let container = TaskSpecContainerSpec {
        image: Some(t.image_id.to_string()),
        labels: Some(task_labels),
        env: Some(
            d.process_env()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        init: Some(true),
        secrets: Some(t.secrets.iter().map(secret_reference).collect()),
        read_only: Some(d.read_only_root_filesystem),
        stop_grace_period: Some(i64::try_from(t.stop_timeout.as_nanos()).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(resources(d)?),
        placement: Some(TaskSpecPlacement {
            constraints: Some(d.constraints.clone()),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
            ..Default::default()
        }),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(t.network.to_string()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Ok(ServiceSpec {
        name: Some(service_name(f, t.instance)),
        labels: Some(service_labels),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn resources(d: &FunctionDeployment) -> Result<TaskSpecResources, SwarmError> {
    let memory = |r: Option<&FunctionResources>, field: &str| {
        quantity(r.map(|r| &r.memory), field, parse_memory)
    };
    let cpu =
        |r: Option<&FunctionResources>, field: &str| quantity(r.map(|r| &r.cpu), field, parse_cpu);
    Ok(TaskSpecResources {
        limits: Some(Limit {
            memory_bytes: memory(d.limits.as_ref(), "limits.memory")?,
            nano_cpus: cpu(d.limits.as_ref(), "limits.cpu")?,
            ..Default::default()
        }),
        reservations: Some(ResourceObject {
            memory_bytes: memory(d.requests.as_ref(), "requests.memory")?,
            nano_cpus: cpu(d.requests.as_ref(), "requests.cpu")?,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn quantity(
    raw: Option<&String>,
    field: &str,
    parse: impl Fn(&str) -> Result<u64, ferry_provider_core::quantity::QuantityError>,
) -> Result<Option<i64>, SwarmError> {
    let Some(raw) = raw.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let v = parse(raw).map_err(|e| SwarmError::BadRequest(format!("invalid {field}: {e}")))?;
    Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)).filter(|v| *v > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_maps_the_deployment() {
        let d: FunctionDeployment = serde_json::from_value(serde_json::json!({
            "service": "echo", "image": "img:1", "envVars": {"A": "1"},
            "labels": {"team": "blue"}, "annotations": {"topic": "t"},
            "constraints": ["node.role==manager"], "limits": {"memory": "64Mi", "cpu": "500m"}
        }))
        .unwrap();
        let f = d.validate().unwrap();
        let t = Target {
            instance: "ferry",
            network: "net",
            image_id: "sha256:abc",
            stop_timeout: Duration::from_secs(2),
            secrets: &[Versioned {
                id: "sid".into(),
                swarm_name: "db-openfaas-fn-ferry-1".into(),
                namespace: "openfaas-fn".into(),
                name: "db".into(),
                version: 1,
            }],
        };
        let s = service_spec(&f, &d, 2, "t0", &t).unwrap();
        assert_eq!(s.name.as_deref(), Some("echo-openfaas-fn-ferry"));
        let labels = s.labels.unwrap();
        assert_eq!(labels["team"], "blue");
        assert_eq!(labels["com.openfaas.annotations.topic"], "t");
        let back: FunctionDeployment = serde_json::from_str(&labels[DEPLOYMENT_LABEL]).unwrap();
        assert_eq!(back, d);
        let task = s.task_template.unwrap();
        let secrets = task
            .container_spec
            .as_ref()
            .unwrap()
            .secrets
            .clone()
            .unwrap();
        let file = secrets[0].file.as_ref().unwrap();
        assert_eq!(file.name.as_deref(), Some("/var/openfaas/secrets/db"));
        assert_eq!(
            (file.mode, secrets[0].secret_id.as_deref()),
            (Some(0o444), Some("sid"))
        );
        let limits = task.resources.unwrap().limits.unwrap();
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(limits.nano_cpus, Some(500_000_000));
        assert_eq!(
            task.placement.unwrap().constraints.unwrap(),
            vec!["node.role==manager".to_string()]
        );
        assert_eq!(
            s.mode.unwrap().replicated.unwrap().replicas,
            Some(2),
            "replicas"
        );
        assert_eq!(
            s.endpoint_spec.unwrap().mode,
            Some(EndpointSpecModeEnum::DNSRR)
        );
        let long = "x".repeat(60);
        let d = FunctionDeployment {
            service: long,
            image: "i".into(),
            ..Default::default()
        };
        assert!(service_name(&d.validate().unwrap(), "ferry").len() <= 63);
    }
}
