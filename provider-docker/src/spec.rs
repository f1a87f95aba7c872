//! A function deployment turned into Docker host configuration: resource limits, the root
//! filesystem, privileges and secret mounts.
//!
//! - `limits.memory` → `Memory` (and `MemorySwap` equal to it: no swap beyond the limit);
//!   `requests.memory` → `MemoryReservation`; `limits.cpu` → `NanoCpus`; `requests.cpu` →
//!   `CpuShares` (1024 per CPU). Quantities are parsed by [`crate::quantity`].
//! - `readOnlyRootFilesystem` → `ReadonlyRootfs`, with a tmpfs at `/tmp` ([`TMP_OPTIONS`]),
//!   where the watchdog writes its lock file and functions their scratch files.
//! - Every container: `no-new-privileges`, every capability dropped and only the configured
//!   `function_cap_add` ones given back (none by default: the watchdog and ordinary
//!   functions need none).
//! - Every container: a pids limit and, unless the image names its own user, an
//!   unprivileged user ([`crate::confine`]).
//! - Each named secret: `<secrets_host_dir>/<namespace>/<name>` bind-mounted read-only at
//!   `/var/openfaas/secrets/<name>`.
//! - `constraints` and GPU resources cannot be honoured by one Docker engine: they are
//!   accepted, kept in the status, and named in a warning on deploy and update.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::models::{HostConfig, Mount, MountType};
use ferry_proto::{FunctionDeployment, FunctionRef, FunctionResources};

use crate::config::Config;
use crate::confine::{self, UserChoice};
use crate::error::ProviderError;
use crate::quantity::{parse_cpu, parse_memory};

/// Mount options of the `/tmp` tmpfs of a read-only function.
pub const TMP_OPTIONS: &str = "rw,noexec,nosuid,nodev,size=64m";
/// Docker's smallest memory limit (6 MiB).
const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// Docker's smallest CPU limit (0.01 CPU).
const MIN_NANO_CPUS: u64 = 10_000_000;

/// The container resources of a deployment; `None` leaves Docker's default (no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// `limits.memory`, bytes.
    pub memory: Option<i64>,
    /// `requests.memory`, bytes.
    pub memory_reservation: Option<i64>,
    /// `limits.cpu`, nano-CPUs.
    pub nano_cpus: Option<i64>,
    /// `requests.cpu`, relative weight (1024 per CPU, at least 2).
    pub cpu_shares: Option<i64>,
}

impl Resources {
    /// Parses `limits` and `requests`; the error names the field and the value.
    pub fn of(d: &FunctionDeployment) -> Result<Resources, ProviderError> {
        let memory = quantity(
            d.limits.as_ref(),
            "limits.memory",
            |r| &r.memory,
            parse_memory,
        )?;
        let reservation = quantity(
            d.requests.as_ref(),
            "requests.memory",
            |r| &r.memory,
            parse_memory,
        )?;
        let cpu = quantity(d.limits.as_ref(), "limits.cpu", |r| &r.cpu, parse_cpu)?;
        let cpu_request = quantity(d.requests.as_ref(), "requests.cpu", |r| &r.cpu, parse_cpu)?;
        let bad = |m: String| Err(ProviderError::BadRequest(m));
        if let Some(m) = memory.filter(|m| *m < MIN_MEMORY) {
            return bad(format!(
                "limits.memory is {m} bytes; Docker's smallest memory limit is 6Mi"
            ));
        }
        if let (Some(limit), Some(request)) = (memory, reservation) {
            if request > limit {
                return bad(format!(
                    "requests.memory ({request} bytes) is larger than limits.memory ({limit} bytes)"
                ));
            }
        }
        if cpu.is_some_and(|c| c < MIN_NANO_CPUS) {
            return bad("limits.cpu is below Docker's smallest CPU limit, 10m (0.01 CPU)".into());
        }
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(Resources {
            memory: memory.map(as_i64),
            memory_reservation: reservation.map(as_i64),
            nano_cpus: cpu.map(as_i64),
            cpu_shares: cpu_request
                .map(|n| as_i64(n.saturating_mul(1024).div_ceil(1_000_000_000).max(2))),
        })
    }
}

/// One field of `limits`/`requests`, parsed; unset, empty and zero mean "no value".
fn quantity(
    resources: Option<&FunctionResources>,
    field: &str,
    get: impl Fn(&FunctionResources) -> &String,
    parse: impl Fn(&str) -> Result<u64, crate::quantity::QuantityError>,
) -> Result<Option<u64>, ProviderError> {
    let Some(raw) = resources.map(get).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let value =
        parse(raw).map_err(|e| ProviderError::BadRequest(format!("invalid {field}: {e}")))?;
    Ok(Some(value).filter(|v| *v > 0))
}

/// Checks the parts of a deployment's spec Docker will apply, before anything is created,
/// and warns (once per deploy or update) about the parts it cannot honour.
pub fn check(f: &FunctionRef, d: &FunctionDeployment) -> Result<(), ProviderError> {
    Resources::of(d)?;
    UserChoice::of(d, None)?;
    confine::pids_limit(d, 0)?;
    if !d.constraints.is_empty() {
        tracing::warn!(function = %f, constraints = ?d.constraints,
            "ignoring scheduling constraints: one Docker engine cannot honour them");
    }
    let extra: Vec<&String> = [&d.limits, &d.requests]
        .into_iter()
        .flatten()
        .flat_map(|r| r.other.keys())
        .collect();
    if !extra.is_empty() {
        tracing::warn!(function = %f, resources = ?extra,
            "ignoring resources Docker containers are not given (e.g. GPUs)");
    }
    Ok(())
}

/// What every function container gets besides its deployment.
#[derive(Debug, Clone)]
pub struct SpecOptions {
    /// The secrets folder as the engine's host sees it (`secrets_host_dir`).
    pub secrets_host_dir: PathBuf,
    /// Capabilities given back after dropping all (`function_cap_add`).
    pub cap_add: Vec<String>,
    /// Largest log file per replica before rotation (`function_log_max_size`); `None` keeps
    /// the engine's logging configuration.
    pub log_max_size: Option<String>,
    /// Rotated log files kept per replica (`function_log_max_files`).
    pub log_max_files: u32,
    /// The user of containers whose image names none (`function_user`); `None` leaves the
    /// image's default (root).
    pub user: Option<String>,
    /// Pids limit per container (`function_pids_limit`); 0 is none.
    pub pids_limit: u32,
}

impl SpecOptions {
    /// The options of `config`.
    pub fn from_config(config: &Config) -> SpecOptions {
        SpecOptions {
            secrets_host_dir: config.secrets_host_dir.clone(),
            cap_add: config.function_cap_add.clone(),
            log_max_size: config.function_log_max_size.clone(),
            log_max_files: config.function_log_max_files,
            user: config.function_user.clone(),
            pids_limit: config.function_pids_limit,
        }
    }

    /// How the user of `f`'s containers is chosen ([`crate::confine`]). The deployment was
    /// [`check`]ed; an annotation that no longer parses is ignored with a warning.
    pub fn user(&self, f: &FunctionRef, d: &FunctionDeployment) -> UserChoice {
        UserChoice::of(d, self.user.as_deref()).unwrap_or_else(|e| {
            tracing::warn!(function = %f, error = %e, "ignoring the user annotation");
            let default = self.user.clone();
            default.map_or(UserChoice::Image, UserChoice::UnlessImageSetsOne)
        })
    }

    /// Adds the deployment's resources, filesystem, privileges and secret mounts to `host`.
    /// The deployment was [`check`]ed when it was accepted; a value that no longer parses is
    /// left out with a warning rather than failing the replica.
    pub fn apply(&self, host: &mut HostConfig, f: &FunctionRef, d: &FunctionDeployment) {
        let resources = Resources::of(d).unwrap_or_else(|e| {
            tracing::warn!(function = %f, error = %e, "starting the replica without resource limits");
            Resources::default()
        });
        host.memory = resources.memory;
        host.memory_swap = resources.memory;
        host.memory_reservation = resources.memory_reservation;
        host.nano_cpus = resources.nano_cpus;
        host.cpu_shares = resources.cpu_shares;
        host.pids_limit = confine::pids_limit(d, self.pids_limit).unwrap_or_else(|e| {
            tracing::warn!(function = %f, error = %e, "ignoring the pids limit annotation");
            Some(i64::from(self.pids_limit)).filter(|l| *l > 0)
        });

        if d.read_only_root_filesystem {
            host.readonly_rootfs = Some(true);
            host.tmpfs = Some(HashMap::from([("/tmp".into(), TMP_OPTIONS.into())]));
        }

        let no_new_privileges = "no-new-privileges:true".to_string();
        let security = host.security_opt.get_or_insert_with(Vec::new);
        if !security.contains(&no_new_privileges) {
            security.push(no_new_privileges);
        }
        host.cap_drop = Some(vec!["ALL".into()]);
        if let Some(size) = &self.log_max_size {
            // Rotated json-file logs: a chatty function cannot fill the disk, and the logs API
            // still reads them.
            host.log_config = Some(bollard::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".into(), size.clone()),
                    ("max-file".into(), self.log_max_files.to_string()),
                ])),
            });
        }
        host.cap_add = (!self.cap_add.is_empty()).then(|| self.cap_add.clone());

        let mut names: Vec<&String> = d.secrets.iter().collect();
        names.sort();
        names.dedup();
        let mounts = names.into_iter().map(|name| Mount {
            target: Some(format!("{}/{name}", ferry_proto::secret::MOUNT_DIR)),
            source: Some(
                self.secrets_host_dir
                    .join(f.namespace.as_str())
                    .join(name)
                    .display()
                    .to_string(),
            ),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
        host.mounts.get_or_insert_with(Vec::new).extend(mounts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(limits: (&str, &str), requests: (&str, &str)) -> FunctionDeployment {
        let res = |(memory, cpu): (&str, &str)| {
            Some(FunctionResources {
                memory: memory.into(),
                cpu: cpu.into(),
                ..Default::default()
            })
        };
        FunctionDeployment {
            service: "f".into(),
            image: "i".into(),
            limits: res(limits),
            requests: res(requests),
            ..Default::default()
        }
    }

    #[test]
    fn resources_map_to_docker_fields() {
        let r = Resources::of(&deployment(("128Mi", "500m"), ("64M", "250m"))).unwrap();
        assert_eq!(
            r,
            Resources {
                memory: Some(128 << 20),
                memory_reservation: Some(64_000_000),
                nano_cpus: Some(500_000_000),
                cpu_shares: Some(256),
            }
        );
        let none = Resources::of(&deployment(("", ""), ("0", ""))).unwrap();
        assert_eq!(none, Resources::default());
        let tiny = Resources::of(&deployment(("", ""), ("", "1m"))).unwrap();
        assert_eq!(tiny.cpu_shares, Some(2));
    }

    #[test]
    fn bad_resources_name_the_field() {
        let cases = [
            (deployment(("12XB", ""), ("", "")), "limits.memory"),
            (deployment(("", ""), ("lots", "")), "requests.memory"),
            (deployment(("", "fast"), ("", "")), "limits.cpu"),
            (deployment(("", ""), ("", "-1")), "requests.cpu"),
            (deployment(("1Mi", ""), ("", "")), "6Mi"),
            (
                deployment(("64Mi", ""), ("128Mi", "")),
                "larger than limits.memory",
            ),
            (deployment(("", "1m"), ("", "")), "10m"),
        ];
        for (d, mentions) in cases {
            let e = Resources::of(&d).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(
                e.to_string().contains(mentions),
                "{e} should mention {mentions}"
            );
        }
    }

    #[test]
    fn host_config_has_limits_privileges_tmpfs_and_secrets() {
        let mut d = deployment(("40Mi", "1"), ("", ""));
        d.read_only_root_filesystem = true;
        d.secrets = vec!["db".into(), "api-key".into(), "db".into()];
        let f = d.validate().unwrap();
        let options = SpecOptions {
            secrets_host_dir: "/host/secrets".into(),
            cap_add: vec![],
            log_max_size: Some("10m".into()),
            log_max_files: 3,
            user: Some(confine::DEFAULT_USER.into()),
            pids_limit: 100,
        };
        let mut host = HostConfig {
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            ..Default::default()
        };
        options.apply(&mut host, &f, &d);
        assert_eq!(host.memory, Some(40 << 20));
        assert_eq!(host.memory_swap, Some(40 << 20));
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.pids_limit, Some(100));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.tmpfs.unwrap()["/tmp"], TMP_OPTIONS);
        assert_eq!(host.security_opt.unwrap(), vec!["no-new-privileges:true"]);
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, None);
        let logs = host.log_config.unwrap();
        assert_eq!(logs.typ.as_deref(), Some("json-file"));
        assert_eq!(logs.config.unwrap()["max-size"], "10m");
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[1].target.as_deref(),
            Some("/var/openfaas/secrets/db")
        );
        assert_eq!(
            mounts[1].source.as_deref(),
            Some("/host/secrets/openfaas-fn/db")
        );
        assert_eq!(mounts[1].read_only, Some(true));

        // Annotations: no pids limit, and the function's own user.
        d.annotations = [
            (confine::PIDS_LIMIT_ANNOTATION.into(), "0".into()),
            (confine::USER_ANNOTATION.into(), "root".into()),
        ]
        .into();
        let mut host = HostConfig::default();
        options.apply(&mut host, &f, &d);
        assert_eq!(host.pids_limit, None);
        assert_eq!(options.user(&f, &d), UserChoice::Fixed("0:0".into()));
    }

    #[test]
    fn bad_annotations_are_refused_on_deploy() {
        for key in [confine::USER_ANNOTATION, confine::PIDS_LIMIT_ANNOTATION] {
            let mut d = deployment(("", ""), ("", ""));
            d.annotations = [(key.to_string(), "-1 x".into())].into();
            let f = d.validate().unwrap();
            let e = check(&f, &d).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(key), "{e}");
        }
    }
}
