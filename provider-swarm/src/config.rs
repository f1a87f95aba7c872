//! `provider-swarm` settings, from environment variables.

use std::net::IpAddr;
use std::time::Duration;

use ferry_provider_core::config::name_like;
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::env::{self, Env, EnvError};
use ferry_runtime::listen::{self, Exposure};

/// `port` default.
pub const DEFAULT_PORT: u16 = 8082;

/// Everything `provider-swarm` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `port` (8082): listen port.
    pub port: u16,
    /// `bind` (`127.0.0.1`; `0.0.0.0` with `basic_auth=true`): listen address, as
    /// provider-docker's ([`ferry_runtime::listen`]).
    pub bind: IpAddr,
    /// `functions_network` (`ferry-functions-swarm`): the attachable overlay network the
    /// function services join (created when missing); the gateway must be attached to it.
    pub network: String,
    /// `instance` (`ferry`): value of the `com.ferry.instance` label on every service,
    /// network and secret this provider creates.
    pub instance: String,
    /// `stop_timeout` (`30s`): the services' stop grace period (SIGTERM to SIGKILL).
    pub stop_timeout: Duration,
    /// `reconcile_interval` (`5s`): how often services of no known function are looked for.
    pub reconcile_interval: Duration,
    /// `basic_auth` and `secret_mount_path`, as provider-docker's.
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        Ok(Config {
            port: env::number_or(e, "port", DEFAULT_PORT)?,
            bind: listen::bind_from_env(e, Exposure::Control)?,
            network: env::parse_or(
                e,
                "functions_network",
                "ferry-functions-swarm".into(),
                name_like,
            )?,
            instance: env::parse_or(e, "instance", "ferry".into(), name_like)?,
            stop_timeout: env::duration_or(e, "stop_timeout", Duration::from_secs(30))?,
            reconcile_interval: env::duration_or(e, "reconcile_interval", Duration::from_secs(5))?,
            auth: AuthConfig::from_env(e)?,
        })
    }
}
