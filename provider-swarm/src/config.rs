//! `provider-swarm` settings: declared once in [`Settings`] (clap: variable, flag, default,
//! parser, `--help`), then resolved into the [`Config`] the provider runs with.

use std::net::IpAddr;
use std::time::Duration;

use ferry_provider_core::config::{Shared, name_like};
use ferry_runtime::auth::AuthConfig;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::listen::ControlBind;
use ferry_runtime::settings;
use ferry_runtime::telemetry::Logging;

/// `port` default.
pub const DEFAULT_PORT: u16 = 8082;

/// Every setting of `provider-swarm`, as declared: the environment variable (or flag), its
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
    /// Attachable overlay network of the function services, created when missing; the
    /// gateway must be attached to it.
    #[arg(long = "functions_network", env = "functions_network",
          default_value = "ferry-functions-swarm", value_parser = name_like)]
    pub functions_network: String,
    /// `instance`, `stop_timeout`, `reconcile_interval`.
    #[command(flatten)]
    pub shared: Shared,
    /// `basic_auth`, `secret_mount_path`.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// `log_format`.
    #[command(flatten)]
    pub logging: Logging,
}

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
        Config::resolve(settings::from_env(e)?)
    }

    /// The configuration `s` gives (the listen address decided with `basic_auth`).
    pub fn resolve(s: Settings) -> Result<Config, EnvError> {
        Ok(Config {
            port: s.port,
            bind: s.bind.address(s.auth.enabled)?,
            network: s.functions_network,
            instance: s.shared.instance,
            stop_timeout: s.shared.stop_timeout,
            reconcile_interval: s.shared.reconcile_interval,
            auth: s.auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_lists_every_setting_with_its_default() {
        let readme = include_str!("../../README.md");
        ferry_runtime::settings::readme::assert_agrees::<Settings>(readme, "provider-swarm");
    }
}
