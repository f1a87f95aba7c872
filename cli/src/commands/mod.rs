//! One module per group of commands; [`dispatch`] runs one. Shared helpers: `KEY=VALUE`
//! pairs and `name.namespace` references.

mod calls;
mod functions;
mod invoke;
mod logs;
mod new;
mod secret;
mod session;
mod up;

#[cfg(test)]
pub(crate) use up::deployment;

use crate::Ctx;
use crate::args::Command;
use crate::error::{Error, Result};

/// Runs `command`.
pub async fn dispatch(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::New(args) => new::run(ctx, &args),
        Command::Build(args) => up::build(ctx, &args).await.map(drop),
        Command::Deploy(args) => up::deploy(ctx, &args).await,
        Command::Up(args) => up::up(ctx, &args).await,
        Command::Login(args) => session::login(ctx, &args).await,
        Command::List(args) => functions::list(ctx, &args).await,
        Command::Describe(args) => functions::describe(ctx, &args).await,
        Command::Invoke(args) => invoke::run(ctx, &args).await,
        Command::Remove(args) => functions::remove(ctx, &args).await,
        Command::Scale(args) => functions::scale(ctx, &args).await,
        Command::Logs(args) => logs::run(ctx, &args).await,
        Command::Secret(command) => secret::run(ctx, command).await,
        Command::Calls(command) => calls::calls(ctx, command).await,
        Command::DeadLetters(command) => calls::dead_letters(ctx, command).await,
        Command::Version => session::version(ctx).await,
        Command::Completion { shell } => {
            session::completion(shell);
            Ok(())
        }
    }
}

/// `KEY=VALUE` (or `KEY: VALUE` when `colon` is allowed) arguments as pairs.
pub(crate) fn pairs(values: &[String], what: &str) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .or_else(|| v.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim_start().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Error::Usage(format!("{what} {v:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// `name` and `namespace`: `--namespace`, else the part after the first `.` of `name`.
pub(crate) fn split_name<'a>(
    name: &'a str,
    namespace: Option<&'a str>,
) -> (&'a str, Option<&'a str>) {
    match (namespace, name.split_once('.')) {
        (Some(ns), _) => (name, Some(ns)),
        (None, Some((n, ns))) => (n, Some(ns)),
        (None, None) => (name, None),
    }
}

/// A duration argument (`30s`, `5m`, `1h30m`).
pub(crate) fn duration(value: &str, what: &str) -> Result<std::time::Duration> {
    ferry_proto::duration::parse(value).map_err(|e| Error::Usage(format!("{what} {value:?}: {e}")))
}
