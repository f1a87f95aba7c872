//! The `ferry` command line: from an empty folder to a deployed function, offline.
//!
//! `ferry new hello --lang shell` writes a handler from a template embedded in the binary,
//! `ferry up -f hello.yml` builds its image on the local Docker engine (no registry) and
//! deploys it, `ferry invoke hello` calls it. The other commands cover the gateway's API:
//! functions, async calls, dead letters, secrets, logs.
//!
//! # Layout
//!
//! - [`args`]: the command line (clap derive);
//! - [`stack`]: OpenFaaS stack files (substitution, anchors and merge keys, unknown keys
//!   reported with their line);
//! - [`templates`], [`build`]: the built-in templates and image builds through bollard;
//! - [`config`]: gateway resolution and stored credentials (`ferry login`);
//! - [`client`]: the typed gateway client (reqwest + ferry-proto's wire types);
//! - [`commands`]: one module per group of commands; [`output`]: JSON and tables;
//! - [`error`]: the error enum and the exit codes scripts can rely on.

pub mod args;
pub mod build;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod stack;
pub mod templates;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Global};
use crate::client::Client;
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::stack::LoadedStack;

/// Parses the command line, runs the command on a single-threaded runtime, prints an error
/// on stderr and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: starting the runtime: {e}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli, Environment::from_process())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli, env: Environment) -> Result<()> {
    let ctx = Ctx {
        global: cli.global,
        env,
    };
    commands::dispatch(&ctx, cli.command).await
}

/// What every command gets: the global options and the environment.
pub struct Ctx {
    /// Global options.
    pub global: Global,
    /// The environment.
    pub env: Environment,
}

impl Ctx {
    /// The stack file, which the command needs.
    pub fn stack(&self) -> Result<LoadedStack> {
        let path = stack::locate(self.global.stack.as_deref()).ok_or_else(|| {
            Error::Usage("no stack file: pass -f FILE (or create stack.yaml)".into())
        })?;
        stack::load(&path, &|name| self.env.get(name))
    }

    /// The stack file when one is named or present (for its gateway), else none.
    fn optional_stack(&self) -> Result<Option<LoadedStack>> {
        match stack::locate(self.global.stack.as_deref()) {
            Some(path) => stack::load(&path, &|name| self.env.get(name)).map(Some),
            None => Ok(None),
        }
    }

    /// A client of the gateway, with credentials; `stack` (when the command read one) may
    /// name the gateway.
    pub fn client_for(&self, stack: Option<&LoadedStack>) -> Result<Client> {
        let owned;
        let stack = match stack {
            Some(s) => Some(s),
            None => {
                owned = self.optional_stack()?;
                owned.as_ref()
            }
        };
        let from_stack = stack
            .and_then(|s| s.stack.provider.as_ref())
            .and_then(|p| p.gateway.as_deref());
        let url = config::gateway_url(self.global.gateway.as_deref(), from_stack, &self.env);
        let credentials = match &self.global.token {
            Some(token) => Some(client::Credentials::Bearer(token.clone())),
            None => config::stored_credentials(&url, &self.env)?,
        };
        Client::new(&url, credentials, self.global.tls_no_verify)
    }

    /// [`client_for`](Self::client_for) a command that reads no stack file of its own.
    pub fn client(&self) -> Result<Client> {
        self.client_for(None)
    }
}
