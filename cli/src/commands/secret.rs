//! `ferry secret create|update|list|remove`: `/system/secrets`. A value comes from
//! `--from-literal`, `--from-file` (binary is sent as `rawValue`) or stdin; it is never
//! printed.

use std::io::Read as _;

use ferry_proto::Secret;
use reqwest::Method;

use crate::args::{SecretCommand, SecretValueArgs};
use crate::error::{Error, Result};
use crate::{Ctx, output};

/// Runs a `ferry secret` command.
pub(super) async fn run(ctx: &Ctx, command: SecretCommand) -> Result<()> {
    let client = ctx.client()?;
    match command {
        SecretCommand::Create(args) => {
            client.secret(Method::POST, &secret(&args)?).await?;
            output::note(&format!("ferry: created secret {}", args.name));
        }
        SecretCommand::Update(args) => {
            client.secret(Method::PUT, &secret(&args)?).await?;
            output::note(&format!("ferry: updated secret {}", args.name));
        }
        SecretCommand::List { namespace } => {
            let list = client.secrets(namespace.as_deref()).await?;
            if ctx.global.json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| vec![s.name.clone(), s.namespace.clone()])
                .collect();
            output::stdout(&output::table(&["NAME", "NAMESPACE"], &rows))?;
        }
        SecretCommand::Remove { name, namespace } => {
            let body = Secret {
                name: name.clone(),
                namespace: namespace.unwrap_or_default(),
                ..Secret::default()
            };
            client.secret(Method::DELETE, &body).await?;
            output::note(&format!("ferry: removed secret {name}"));
        }
    }
    Ok(())
}

/// The secret `args` describe, with its value.
fn secret(args: &SecretValueArgs) -> Result<Secret> {
    let bytes = match (&args.from_literal, &args.from_file) {
        (Some(value), _) => value.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path).map_err(Error::io(path))?,
        (None, None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(Error::io("stdin"))?;
            buf
        }
    };
    if bytes.is_empty() {
        return Err(Error::Usage(format!(
            "secret {}: the value is empty",
            args.name
        )));
    }
    let mut secret = Secret {
        name: args.name.clone(),
        namespace: args.namespace.clone().unwrap_or_default(),
        ..Secret::default()
    };
    match String::from_utf8(bytes) {
        Ok(text) => secret.value = text,
        Err(e) => secret.raw_value = e.into_bytes(),
    }
    Ok(secret)
}
