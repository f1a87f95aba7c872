//! `provider-docker` settings: declared once in [`Settings`] (clap: variable, flag, default,
//! parser, `--help`), then resolved into the [`Config`] the provider runs with.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry_provider_core::config::{Shared, name_like};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::listen::ControlBind;
use ferry_runtime::settings;
use ferry_runtime::telemetry::Logging;

use crate::confine;

/// `port` default.
pub const DEFAULT_PORT: u16 = 8081;

/// Every setting of `provider-docker`, as declared: the environment variable (or flag), its
/// default and its parser. [`Config::resolve`] turns it into the [`Config`].
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Listen port.
    #[arg(long = "port", env = "port", default_value_t = DEFAULT_PORT,
          value_parser = settings::number::<u16>)]
    pub port: u16,
    /// `bind`, `allow_unauthenticated`.
    #[command(flatten)]
    pub bind: ControlBind,
    /// How the gateway reaches replicas (and the provider their metrics): published (ports
    /// on 127.0.0.1) or network (their address on the functions network).
    #[arg(long = "endpoint_mode", env = "endpoint_mode", default_value = "published",
          value_parser = endpoint_mode)]
    pub endpoint_mode: EndpointMode,
    /// Docker network function containers join; created if missing.
    #[arg(long = "functions_network", env = "functions_network",
          default_value = "ferry-functions", value_parser = name_like)]
    pub functions_network: String,
    /// `instance`, `stop_timeout`, `reconcile_interval`.
    #[command(flatten)]
    pub shared: Shared,
    /// Desired state (functions/) and secrets (secrets/), in owner-only folders.
    #[arg(
        long = "data_dir",
        env = "data_dir",
        default_value = "/var/lib/ferry/provider"
    )]
    pub data_dir: PathBuf,
    /// The secrets folder as the Docker engine's host sees it, the source of the secrets'
    /// bind mounts (set it when the provider runs in a container); unset:
    /// <data_dir>/secrets, absolute.
    #[arg(long = "secrets_host_dir", env = "secrets_host_dir", value_parser = host_dir)]
    pub secrets_host_dir: Option<PathBuf>,
    /// Always, IfNotPresent or Never.
    #[arg(long = "image_pull_policy", env = "image_pull_policy", default_value = "IfNotPresent",
          value_parser = pull_policy)]
    pub image_pull_policy: PullPolicy,
    /// How long an update waits for new replicas to be ready before removing the old ones
    /// anyway.
    #[arg(long = "rollout_timeout", env = "rollout_timeout", default_value = "60s",
          value_parser = settings::duration)]
    pub rollout_timeout: Duration,
    /// Timeout of one readiness probe (GET /_/health or the annotated path).
    #[arg(long = "probe_timeout", env = "probe_timeout", default_value = "1s",
          value_parser = settings::duration)]
    pub probe_timeout: Duration,
    /// How long a readiness result is reused.
    #[arg(long = "probe_cache", env = "probe_cache", default_value = "500ms",
          value_parser = settings::duration)]
    pub probe_cache: Duration,
    /// A running replica that stays unready this long is replaced; 0 = never.
    #[arg(long = "unready_timeout", env = "unready_timeout", default_value = "60s",
          value_parser = settings::duration)]
    pub unready_timeout: Duration,
    /// Capabilities function containers get back (they run with none), comma-separated, e.g.
    /// CHOWN,SETUID.
    #[arg(long = "function_cap_add", env = "function_cap_add", default_value = "",
          hide_default_value = true, value_parser = caps)]
    pub function_cap_add: std::vec::Vec<String>,
    /// User of function containers whose image has no USER: uid[:gid], a name, root, or
    /// image for the image's own choice (annotation com.ferry.user per function).
    #[arg(long = "function_user", env = "function_user", default_value = confine::DEFAULT_USER,
          value_parser = confine::parse_user)]
    pub function_user: std::option::Option<String>,
    /// Most processes and threads per function container, 0 = no limit (annotation
    /// com.ferry.pids-limit per function).
    #[arg(long = "function_pids_limit", env = "function_pids_limit",
          default_value_t = confine::DEFAULT_PIDS_LIMIT, value_parser = confine::parse_pids_limit)]
    pub function_pids_limit: u32,
    /// Size of the rotated json-file logs of function containers; 0 keeps the engine's
    /// logging configuration.
    #[arg(long = "function_log_max_size", env = "function_log_max_size", default_value = "10m",
          value_parser = log_size)]
    pub function_log_max_size: std::option::Option<String>,
    /// Rotated log files kept per replica.
    #[arg(long = "function_log_max_files", env = "function_log_max_files", default_value = "3",
          value_parser = settings::number::<u32>)]
    pub function_log_max_files: u32,
    /// How often replicas' metrics are read and autoscaling / scale-to-zero decisions made
    /// (at least 10ms).
    #[arg(long = "autoscale_interval", env = "autoscale_interval", default_value = "2s",
          value_parser = autoscale_interval)]
    pub autoscale_interval: Duration,
    /// Autoscaling lowers replicas only to the highest recommendation of this window (label
    /// com.openfaas.scale.down.window per function).
    #[arg(long = "scale_down_window", env = "scale_down_window", default_value = "60s",
          value_parser = settings::duration)]
    pub scale_down_window: Duration,
    /// How long a replica going to zero keeps running, unrouted, before it is frozen (calls
    /// routed on an outdated replica list finish first); at least the gateway's
    /// endpoint_max_stale.
    #[arg(long = "freeze_grace", env = "freeze_grace", default_value = "5s",
          value_parser = settings::duration)]
    pub freeze_grace: Duration,
    /// How long a function stays frozen before its replica is stopped and its memory
    /// released (label com.ferry.scale.zero.stop-after per function).
    #[arg(long = "frozen_stop_after", env = "frozen_stop_after", default_value = "30m",
          value_parser = settings::duration)]
    pub frozen_stop_after: Duration,
    /// Most memory all frozen replicas together may hold (e.g. 1Gi, 512Mi); past it the
    /// longest-frozen are stopped first. 0 = no cap.
    #[arg(long = "max_frozen_memory", env = "max_frozen_memory", default_value = "1Gi",
          value_parser = memory)]
    pub max_frozen_memory: u64,
    /// NATS server(s) whose ferry-calls stream com.openfaas.scale.type=queue counts; unset,
    /// such functions are not autoscaled.
    #[arg(long = "nats_url", env = "nats_url")]
    pub nats_url: Option<String>,
    /// `basic_auth`, `secret_mount_path`.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// `log_format`.
    #[command(flatten)]
    pub logging: Logging,
}

/// How the gateway reaches a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    /// Port 8080 of each replica is published on `127.0.0.1:<random>`; for a gateway on the
    /// host (tests, development).
    Published,
    /// The replica's address on the functions network; for a gateway attached to that network
    /// (compose).
    Network,
}

/// When the provider asks the engine to pull an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every deploy and update.
    Always,
    /// Pull only when the engine does not have the image.
    IfNotPresent,
    /// Never pull; the image must be on the engine already.
    Never,
}

/// Everything `provider-docker` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `port` (8081): listen port.
    pub port: u16,
    /// `bind` (`127.0.0.1`; `0.0.0.0` with `basic_auth=true`): listen address. A
    /// non-loopback one with `basic_auth` off is refused unless `allow_unauthenticated=true`:
    /// `/system/*` controls Docker ([`ferry_runtime::listen`]).
    pub bind: IpAddr,
    /// `endpoint_mode` (`published`): `published` or `network`.
    pub endpoint_mode: EndpointMode,
    /// `functions_network` (`ferry-functions`): the Docker network function containers join.
    pub network: String,
    /// `instance` (`ferry`): value of the `com.ferry.instance` label on everything this
    /// provider creates; providers with different instances on one engine ignore each other.
    pub instance: String,
    /// `data_dir` (`/var/lib/ferry/provider`): where desired state (`functions/`) and
    /// secrets (`secrets/`) are kept.
    pub data_dir: PathBuf,
    /// `image_pull_policy` (`IfNotPresent`): `Always`, `IfNotPresent` or `Never`.
    pub pull_policy: PullPolicy,
    /// `stop_timeout` (`30s`): grace between SIGTERM and SIGKILL when a replica is removed.
    pub stop_timeout: Duration,
    /// `rollout_timeout` (`60s`): how long an update waits for new replicas to become ready
    /// before the old ones are removed anyway.
    pub rollout_timeout: Duration,
    /// `probe_timeout` (`1s`): timeout of one readiness probe (`GET /_/health` or the annotated path).
    pub probe_timeout: Duration,
    /// `probe_cache` (`500ms`): how long a readiness result is reused.
    pub probe_cache: Duration,
    /// `reconcile_interval` (`5s`): how often replica counts are checked and restored.
    pub reconcile_interval: Duration,
    /// `secrets_host_dir` (`<data_dir>/secrets`, made absolute): the secrets folder as the
    /// Docker engine's host sees it, the source of the secrets' bind mounts. Differs from
    /// `<data_dir>/secrets` only when the provider runs in a container.
    pub secrets_host_dir: PathBuf,
    /// `unready_timeout` (`60s`): a running replica unready this long is replaced; `0`
    /// disables replacement.
    pub unready_timeout: Duration,
    /// `function_cap_add` (empty): capabilities given back to function containers, which
    /// otherwise run with none (comma-separated, e.g. `CHOWN,SETUID`).
    pub function_cap_add: Vec<String>,
    /// `function_user` (`65534:65534`, nobody): the user function containers run as when
    /// their image names none and no `com.ferry.user` annotation does; `image` leaves the
    /// image's default (root). See [`crate::confine`].
    pub function_user: Option<String>,
    /// `function_pids_limit` (`1024`): most processes and threads per function container
    /// (annotation `com.ferry.pids-limit` per function); `0` is no limit.
    pub function_pids_limit: u32,
    /// `function_log_max_size` (`10m`): json-file log size per replica before rotation;
    /// `0` keeps the engine's own logging configuration.
    pub function_log_max_size: Option<String>,
    /// `function_log_max_files` (`3`): rotated log files kept per replica.
    pub function_log_max_files: u32,
    /// `autoscale_interval` (`2s`): how often replica metrics are read and autoscaling and
    /// scale-to-zero decisions made.
    pub autoscale_interval: Duration,
    /// `scale_down_window` (`60s`): an autoscaled function scales down only to the highest
    /// recommendation of this window (label `com.openfaas.scale.down.window` per function).
    pub scale_down_window: Duration,
    /// `freeze_grace` (`5s`): how long a replica going to zero keeps running, unrouted,
    /// before it is frozen (see [`crate::freeze`]).
    pub freeze_grace: Duration,
    /// `frozen_stop_after` (`30m`): how long a function stays frozen before its replica is
    /// stopped (label `com.ferry.scale.zero.stop-after` per function).
    pub frozen_stop_after: Duration,
    /// `max_frozen_memory` (`1Gi`): most memory frozen replicas may hold together, in bytes;
    /// `0` is no cap.
    pub max_frozen_memory: u64,
    /// `nats_url` (unset): NATS server whose `ferry-calls` stream `queue`-type autoscaling
    /// reads; unset, such functions are not autoscaled. Credentials in it authenticate; show
    /// it only through [`ferry_runtime::redact::url`].
    pub nats_url: Option<String>,
    /// `basic_auth` (`false`; `true` in compose) and `secret_mount_path` (`/run/secrets`):
    /// whether `/system/*` requires the basic-auth credentials in `basic-auth-user` and
    /// `basic-auth-password` of that folder, which the gateway writes (the provider waits
    /// for them at start).
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        Config::resolve(settings::from_env(e)?)
    }

    /// The configuration `s` gives: the listen address and the secrets' host folder decided
    /// from the settings they depend on.
    pub fn resolve(s: Settings) -> Result<Config, EnvError> {
        let secrets_host_dir = match s.secrets_host_dir {
            Some(dir) => dir,
            None => std::path::absolute(s.data_dir.join("secrets")).map_err(|err| EnvError {
                name: "data_dir".into(),
                value: s.data_dir.display().to_string(),
                reason: format!("cannot make it absolute: {err}"),
            })?,
        };
        Ok(Config {
            port: s.port,
            bind: s.bind.address(s.auth.enabled)?,
            endpoint_mode: s.endpoint_mode,
            network: s.functions_network,
            instance: s.shared.instance,
            data_dir: s.data_dir,
            pull_policy: s.image_pull_policy,
            stop_timeout: s.shared.stop_timeout,
            rollout_timeout: s.rollout_timeout,
            probe_timeout: s.probe_timeout,
            probe_cache: s.probe_cache,
            reconcile_interval: s.shared.reconcile_interval,
            secrets_host_dir,
            unready_timeout: s.unready_timeout,
            function_cap_add: s.function_cap_add,
            function_user: s.function_user,
            function_pids_limit: s.function_pids_limit,
            function_log_max_size: s.function_log_max_size,
            function_log_max_files: s.function_log_max_files,
            autoscale_interval: s.autoscale_interval,
            scale_down_window: s.scale_down_window,
            freeze_grace: s.freeze_grace,
            frozen_stop_after: s.frozen_stop_after,
            max_frozen_memory: s.max_frozen_memory,
            nats_url: s.nats_url,
            auth: s.auth,
        })
    }
}

fn endpoint_mode(v: &str) -> Result<EndpointMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "published" => Ok(EndpointMode::Published),
        "network" => Ok(EndpointMode::Network),
        _ => Err("expected `published` or `network`".into()),
    }
}

fn pull_policy(v: &str) -> Result<PullPolicy, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "always" => Ok(PullPolicy::Always),
        "ifnotpresent" => Ok(PullPolicy::IfNotPresent),
        "never" => Ok(PullPolicy::Never),
        _ => Err("expected `Always`, `IfNotPresent` or `Never`".into()),
    }
}

fn host_dir(v: &str) -> Result<PathBuf, String> {
    let v = v.trim();
    if v.starts_with('/') {
        Ok(PathBuf::from(v))
    } else {
        Err("expected an absolute path on the Docker engine's host".into())
    }
}

fn autoscale_interval(v: &str) -> Result<Duration, String> {
    match settings::duration(v)? {
        d if d >= Duration::from_millis(10) => Ok(d),
        _ => Err("must be at least 10ms".into()),
    }
}

/// A memory quantity such as `1Gi` or `512M`, in bytes; `0` is allowed.
fn memory(v: &str) -> Result<u64, String> {
    match v.trim() {
        "0" => Ok(0),
        v => ferry_provider_core::quantity::parse_memory(v).map_err(|e| e.to_string()),
    }
}

/// `10M` → `Some("10m")`; `0` → `None` (the engine's logging configuration).
fn log_size(v: &str) -> Result<Option<String>, String> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(['k', 'm', 'g']);
    match digits.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(v)),
        Err(_) => {
            Err("expected a size such as 10m, 512k or 1g; 0 to keep the engine's logging".into())
        }
    }
}

/// `CHOWN, cap_setuid` → `["CHOWN", "SETUID"]`.
fn caps(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let c = c.to_ascii_uppercase();
            let c = c.strip_prefix("CAP_").unwrap_or(&c).to_string();
            if !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                Ok(c)
            } else {
                Err(format!(
                    "{c:?} is not a capability name (e.g. CHOWN, NET_RAW)"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_readme_table_lists_every_setting_with_its_default() {
        let readme = include_str!("../../README.md");
        ferry_runtime::settings::readme::assert_agrees::<Settings>(readme, "provider-docker");
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c.port, 8081);
        assert_eq!(c.endpoint_mode, EndpointMode::Published);
        assert_eq!(c.network, "ferry-functions");
        assert_eq!(c.instance, "ferry");
        assert_eq!(c.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(c.stop_timeout, Duration::from_secs(30));
        assert_eq!(
            c.secrets_host_dir,
            PathBuf::from("/var/lib/ferry/provider/secrets")
        );
        assert_eq!(c.unready_timeout, Duration::from_secs(60));
        assert!(c.function_cap_add.is_empty());
        assert_eq!(c.function_user.as_deref(), Some("65534:65534"));
        assert_eq!(c.function_pids_limit, 1024);
        assert_eq!(c.autoscale_interval, Duration::from_secs(2));
        assert_eq!(c.scale_down_window, Duration::from_secs(60));
        assert_eq!(c.nats_url, None);
        assert!(!c.auth.enabled);
        assert_eq!(c.auth.secret_mount_path, PathBuf::from("/run/secrets"));
        let e: HashMap<&str, &str> = [
            ("autoscale_interval", "250ms"),
            ("scale_down_window", "5s"),
            ("nats_url", "nats://n:4222"),
            ("basic_auth", "true"),
            ("secret_mount_path", "/s"),
        ]
        .into();
        let c = Config::from_env(&e).unwrap();
        assert!(c.auth.enabled);
        assert_eq!(c.auth.secret_mount_path, PathBuf::from("/s"));
        assert_eq!(c.autoscale_interval, Duration::from_millis(250));
        assert_eq!(c.scale_down_window, Duration::from_secs(5));
        assert_eq!(c.nats_url.as_deref(), Some("nats://n:4222"));
        let bad: HashMap<&str, &str> = [("autoscale_interval", "0")].into();
        assert!(
            Config::from_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("autoscale_interval")
        );
    }

    #[test]
    fn secrets_host_dir_and_capabilities() {
        let e: HashMap<&str, &str> = [
            ("data_dir", "/srv/ferry"),
            ("function_cap_add", "chown, CAP_NET_RAW"),
            ("unready_timeout", "0"),
            ("function_user", "image"),
            ("function_pids_limit", "0"),
        ]
        .into();
        let c = Config::from_env(&e).unwrap();
        assert_eq!((c.function_user, c.function_pids_limit), (None, 0));
        assert_eq!(c.secrets_host_dir, PathBuf::from("/srv/ferry/secrets"));
        assert_eq!(c.function_cap_add, vec!["CHOWN", "NET_RAW"]);
        assert_eq!(c.unready_timeout, Duration::ZERO);
        let e: HashMap<&str, &str> = [("data_dir", "rel"), ("secrets_host_dir", "/host/s")].into();
        assert_eq!(
            Config::from_env(&e).unwrap().secrets_host_dir,
            PathBuf::from("/host/s")
        );
        for (k, v) in [
            ("secrets_host_dir", "relative"),
            ("function_cap_add", "a-b"),
            ("function_user", "a b"),
            ("function_pids_limit", "-1"),
        ] {
            let bad: HashMap<&str, &str> = [(k, v)].into();
            assert!(Config::from_env(&bad).unwrap_err().to_string().contains(k));
        }
    }

    #[test]
    fn values_and_errors() {
        let e: HashMap<&str, &str> = [
            ("endpoint_mode", "Network"),
            ("image_pull_policy", "Never"),
            ("functions_network", "fn-net"),
            ("stop_timeout", "2s"),
        ]
        .into();
        let c = Config::from_env(&e).unwrap();
        assert_eq!(c.endpoint_mode, EndpointMode::Network);
        assert_eq!(c.pull_policy, PullPolicy::Never);
        assert_eq!(c.network, "fn-net");
        assert_eq!(c.stop_timeout, Duration::from_secs(2));
        let bad: HashMap<&str, &str> = [("endpoint_mode", "host")].into();
        assert!(
            Config::from_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("endpoint_mode")
        );
        let bad: HashMap<&str, &str> = [("instance", "a b")].into();
        assert!(
            Config::from_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("instance")
        );
    }
}
