//! `ferry login`, `ferry version` and `ferry completion`.

use std::io::Read as _;

use base64::Engine as _;
use clap::CommandFactory as _;
use reqwest::Method;

use crate::args::{Cli, LoginArgs};
use crate::client::{Client, Credentials};
use crate::error::{Error, Result};
use crate::{Ctx, config, output};

/// `ferry login`: checks the credentials with `GET /system/functions` (as faas-cli does),
/// then stores them for the gateway.
pub(super) async fn login(ctx: &Ctx, args: &LoginArgs) -> Result<()> {
    let secret = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(Error::io("stdin"))?;
        Some(text.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        args.password.clone()
    };
    let credentials = if args.store_token {
        let token = secret
            .or_else(|| ctx.global.token.clone())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Usage("--store-token needs --token or --password-stdin".into())
            })?;
        Credentials::Bearer(token)
    } else {
        let password = secret
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Usage("give a password: --password-stdin or -p".into()))?;
        let pair = format!("{}:{password}", args.username);
        Credentials::Basic(base64::engine::general_purpose::STANDARD.encode(pair))
    };
    let base = ctx.client()?.base().to_owned();
    let client = Client::new(&base, Some(credentials.clone()), ctx.global.tls_no_verify)?;
    client
        .send(Method::GET, "/system/functions", None::<&()>)
        .await?;
    let path = config::store(&base, &credentials, &ctx.env)?;
    output::note(&format!(
        "ferry: credentials for {base} checked and saved in {}",
        path.display()
    ));
    Ok(())
}

/// `ferry version`: the client's version, and the gateway's `GET /system/info`.
pub(super) async fn version(ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let info = client.info().await?;
    if ctx.global.json {
        let value = serde_json::json!({
            "client": { "version": env!("CARGO_PKG_VERSION") },
            "gateway": { "url": client.base(), "info": info },
        });
        return output::json(&value);
    }
    let provider = info.provider.unwrap_or_default();
    output::stdout(&format!(
        "ferry CLI:  {}\ngateway:    {} (version {}, sha {}, {})\nprovider:   {} on {} (version {})\n",
        env!("CARGO_PKG_VERSION"),
        client.base(),
        info.version.release,
        info.version.sha,
        info.arch,
        provider.provider,
        provider.orchestration,
        provider.version.release,
    ))
}

/// `ferry completion SHELL`.
pub(super) fn completion(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "ferry", &mut std::io::stdout());
}
