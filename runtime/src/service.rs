//! The `main` of every network service (gateway, queue-worker, provider-docker,
//! provider-swarm): the flags (`--help`, `--version`, `--healthcheck`), logging, the settings
//! (declared with clap, [`crate::settings`]: from the environment, or flags that win),
//! the listening socket (on the address [`crate::listen`] decides: loopback unless
//! `basic_auth` is on or `bind` says otherwise), and the library's `run` until SIGTERM or
//! SIGINT.
//!
//! Exit codes: 0 after a clean shutdown, 1 when `run` fails, [`EXIT_CONFIG`] (64, BSD
//! `EX_USAGE`) on a configuration error (a refused `bind` included), [`EXIT_LISTEN`] (69,
//! `EX_UNAVAILABLE`) when the address cannot be bound; `--healthcheck` exits 0 or 1.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::env::ProcessEnv;
use crate::settings::{self, SettingsError};
use crate::{healthcheck, signal, telemetry};

/// Exit code of a configuration error (BSD `EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when the listening port cannot be bound (BSD `EX_UNAVAILABLE`).
pub const EXIT_LISTEN: u8 = 69;

/// What a service binary is.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The binary's name, as in messages and `--version`.
    pub name: &'static str,
    /// Its version (`env!("CARGO_PKG_VERSION")` of the binary's crate).
    pub version: &'static str,
    /// What it is: the first lines of `--help`, before the settings (which come from the
    /// settings' clap declaration).
    pub about: &'static str,
    /// The lines of `--help` after the settings.
    pub after_help: &'static str,
    /// The port it listens on when `port` is unset (also what `--healthcheck` calls).
    pub default_port: u16,
}

impl Service {
    /// Runs the service: answers the flags, or sets up logging, reads the settings `A` from
    /// the environment and the command line, turns them into the configuration with
    /// `resolve`, binds `address(&config)` and runs `run` until a shutdown signal.
    pub async fn main<A, C, CE, RE, Fut>(
        self,
        resolve: impl FnOnce(A) -> Result<C, CE>,
        address: impl FnOnce(&C) -> SocketAddr,
        run: impl FnOnce(C, TcpListener, signal::Shutdown) -> Fut,
    ) -> ExitCode
    where
        A: clap::Args + clap::FromArgMatches,
        CE: Display,
        RE: Display,
        Fut: Future<Output = Result<(), RE>>,
    {
        let help = || settings::help::<A>(self.name, self.about, self.after_help);
        if let Some(code) = self.flags(std::env::args().skip(1), help) {
            return code;
        }
        let env = ProcessEnv;
        telemetry::init(telemetry::log_format(&env).unwrap_or(telemetry::LogFormat::Text));
        let config = match settings::parse::<A>(self.name, &env, std::env::args_os().skip(1)) {
            Ok(settings) => resolve(settings).map_err(|e| e.to_string()),
            Err(SettingsError::Invalid(e)) => Err(e.to_string()),
            Err(SettingsError::Usage(e)) => Err(e),
        };
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}: {e}", self.name);
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let address = address(&config);
        let listener = match TcpListener::bind(address).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{}: cannot listen on {address}: {e}", self.name);
                return ExitCode::from(EXIT_LISTEN);
            }
        };
        match run(config, listener, signal::shutdown()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    /// The exit code when `args` hold a flag that ends the process at once; `None` to run.
    fn flags(
        &self,
        mut args: impl Iterator<Item = String>,
        help: impl FnOnce() -> String,
    ) -> Option<ExitCode> {
        let mut help = Some(help);
        args.find_map(|arg| match arg.as_str() {
            "--help" | "-h" => {
                print!("{}", help.take().map(|h| h()).unwrap_or_default());
                Some(ExitCode::SUCCESS)
            }
            "--version" => {
                println!("{} {}", self.name, self.version);
                Some(ExitCode::SUCCESS)
            }
            "--healthcheck" => Some(healthcheck::run(
                &ProcessEnv,
                self.name,
                "port",
                self.default_port,
            )),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: Service = Service {
        name: "svc",
        version: "1.2.3",
        about: "about",
        after_help: "",
        default_port: 1,
    };

    fn flags(args: &[&str]) -> Option<ExitCode> {
        SERVICE.flags(args.iter().map(|a| a.to_string()), || "help\n".to_string())
    }

    #[test]
    fn help_and_version_end_the_process_and_other_arguments_do_not() {
        assert_eq!(flags(&["--help"]), Some(ExitCode::SUCCESS));
        assert_eq!(flags(&["x", "-h"]), Some(ExitCode::SUCCESS));
        assert_eq!(flags(&["--version"]), Some(ExitCode::SUCCESS));
        assert_eq!(flags(&[]), None);
        assert_eq!(flags(&["--verbose", "serve"]), None);
    }
}
