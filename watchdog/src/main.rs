//! `watchdog`: PID 1 of a function image. See the `ferry_watchdog` crate docs for the
//! configuration (environment variables) and behaviour.
//!
//! Flags: `--version` prints the version; `--run-healthcheck` exits 0 if the lock file
//! `/tmp/.lock` exists and 1 otherwise (for exec health probes); `--help` lists the settings
//! (the environment variables, also accepted as flags). Exit codes: 0 after a clean
//! shutdown, 1 on a runtime failure (e.g. the http-mode function process exited), 64 on a
//! configuration or usage error.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use ferry_runtime::env::ProcessEnv;
use ferry_runtime::settings::SettingsError;
use ferry_watchdog::config::{Settings, default_lock_path};
use ferry_watchdog::{Config, VERSION};

const ABOUT: &str = "\
watchdog (ferry): PID 1's child in a function image, of-watchdog compatible.
Configured by environment variables (a function image sets them; the function's process
inherits them), or the same names as flags.";

const AFTER_HELP: &str = "\
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds.
Flags: --version; --run-healthcheck (exit 0 if /tmp/.lock exists, else 1); --help.";

/// BSD `EX_USAGE`: bad flags or configuration.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    if let Some(exit) = flags() {
        return exit;
    }

    let format = match ferry_runtime::telemetry::log_format(&ProcessEnv) {
        Ok(format) => format,
        Err(error) => {
            eprintln!("watchdog: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ferry_runtime::telemetry::init(format);
    let args = std::env::args_os().skip(1);
    let config = match ferry_runtime::settings::parse::<Settings>("watchdog", &ProcessEnv, args) {
        Ok(settings) => Config::resolve(settings).map_err(|e| e.to_string()),
        Err(SettingsError::Invalid(e)) => Err(e.to_string()),
        Err(SettingsError::Usage(e)) => Err(e),
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("watchdog: invalid configuration: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("watchdog: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(config))
}

/// Answers the flags, if any: the exit code when the watchdog is not to run.
fn flags() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exit = match args.first().map(String::as_str)? {
        "--version" | "-version" => {
            println!("watchdog (ferry) version {VERSION}");
            ExitCode::SUCCESS
        }
        "--run-healthcheck" | "-run-healthcheck" => {
            if default_lock_path().exists() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        "--help" | "-h" | "-help" => {
            print!(
                "{}",
                ferry_runtime::settings::help::<Settings>("watchdog", ABOUT, AFTER_HELP)
            );
            ExitCode::SUCCESS
        }
        // Settings as flags (`--port=9000`), or a usage error from their parsing.
        _ => return None,
    };
    Some(exit)
}

/// Listens (the function's port, and the metrics port unless it is 0) and serves until
/// SIGTERM or SIGINT.
async fn serve(config: Config) -> ExitCode {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%addr, %error, "cannot listen");
            return ExitCode::from(1);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("watchdog listening on {addr}");
    }
    let metrics = match config.metrics_port {
        0 => None,
        port => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    // The function matters more than its metrics: serve it anyway.
                    tracing::error!(%addr, %error, "cannot listen for metrics; serving without them");
                    None
                }
            }
        }
    };
    let shutdown = ferry_runtime::signal::shutdown();
    match ferry_watchdog::run_with_metrics(config, listener, metrics, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "watchdog failed");
            ExitCode::from(1)
        }
    }
}
