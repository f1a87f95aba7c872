//! Where the gateway is and how to authenticate to it.
//!
//! **Gateway**: `--gateway`, else the stack file's `provider.gateway`, else `OPENFAAS_URL`,
//! else `http://127.0.0.1:8080` (faas-cli's order); `http://` is added when no scheme is
//! given and a trailing `/` dropped.
//!
//! **Credentials**: `--token` (or `FERRY_TOKEN`), else the entry for that gateway URL in
//! ferry's config file (`$FERRY_CONFIG/config.yml`, else `~/.ferry/config.yml`), else in
//! faas-cli's (`$OPENFAAS_CONFIG/config.yml`, else `~/.openfaas/config.yml`, which
//! `make login` writes). Both files have faas-cli's format:
//!
//! ```yaml
//! auths:
//! - gateway: http://127.0.0.1:8080
//!   auth: basic            # token: base64(user:password)
//!   token: YWRtaW46c2VjcmV0
//! - gateway: https://ferry.example
//!   auth: bearer           # token: an API token (faas-cli's oauth2 is read the same way)
//!   token: fy_...
//! ```
//!
//! ferry writes its file owner-only (folder `0700`, file `0600`), one entry per gateway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::client::Credentials;
use crate::error::{Error, Result};

/// The gateway when nothing else names one.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8080";

/// The process environment ferry reads, captured once (tests pass a map).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// The process's environment.
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    /// A given set of variables.
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Environment { vars }
    }

    /// One variable.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// A variable that is set and not empty.
    fn non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// ferry's config file.
    pub fn ferry_config(&self) -> PathBuf {
        self.config_dir("FERRY_CONFIG", ".ferry").join("config.yml")
    }

    /// faas-cli's config file.
    pub fn faas_cli_config(&self) -> PathBuf {
        self.config_dir("OPENFAAS_CONFIG", ".openfaas")
            .join("config.yml")
    }

    fn config_dir(&self, var: &str, home_dir: &str) -> PathBuf {
        match self.non_empty(var) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(self.get("HOME").unwrap_or_else(|| ".".into())).join(home_dir),
        }
    }
}

/// The gateway URL, from the sources in order of priority.
pub fn gateway_url(flag: Option<&str>, stack: Option<&str>, env: &Environment) -> String {
    let raw = flag
        .map(str::to_owned)
        .or_else(|| stack.filter(|s| !s.is_empty()).map(str::to_owned))
        .or_else(|| env.non_empty("OPENFAAS_URL"))
        .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned());
    normalise(&raw)
}

/// `raw` with a scheme and without a trailing `/`.
pub fn normalise(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

/// A config file: `auths:`.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: Vec<AuthEntry>,
}

/// One entry of `auths:`.
#[derive(Debug, Clone, Deserialize)]
struct AuthEntry {
    gateway: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    token: String,
}

/// The stored credentials for `gateway`: ferry's file first, then faas-cli's.
pub fn stored_credentials(gateway: &str, env: &Environment) -> Result<Option<Credentials>> {
    for path in [env.ferry_config(), env.faas_cli_config()] {
        if let Some(entry) = read(&path)?
            .into_iter()
            .find(|e| normalise(&e.gateway) == gateway)
        {
            return Ok(Some(match entry.auth.as_str() {
                "bearer" | "oauth2" => Credentials::Bearer(entry.token),
                _ => Credentials::Basic(entry.token),
            }));
        }
    }
    Ok(None)
}

/// The entries of the config file at `path` (none when it does not exist).
fn read(path: &Path) -> Result<Vec<AuthEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(file.auths)
}

/// Stores `credentials` for `gateway` in ferry's config file, replacing its entry.
pub fn store(gateway: &str, credentials: &Credentials, env: &Environment) -> Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let path = env.ferry_config();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io(dir))?;
    let mut entries: Vec<AuthEntry> = read(&path)?
        .into_iter()
        .filter(|e| normalise(&e.gateway) != gateway)
        .collect();
    let (auth, token) = match credentials {
        Credentials::Basic(t) => ("basic", t),
        Credentials::Bearer(t) => ("bearer", t),
    };
    entries.push(AuthEntry {
        gateway: gateway.to_owned(),
        auth: auth.to_owned(),
        token: token.clone(),
    });
    let mut text = String::from("auths:\n");
    for e in &entries {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        text.push_str(&format!(
            "- gateway: {}\n  auth: {}\n  token: {}\n",
            quote(&e.gateway),
            quote(&e.auth),
            quote(&e.token)
        ));
    }
    let tmp = dir.join(".config.yml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(Error::io(&tmp))?;
    file.write_all(text.as_bytes()).map_err(Error::io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_map(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn gateway_order_is_flag_stack_env_default() {
        let e = env(&[("OPENFAAS_URL", "env:8080/")]);
        assert_eq!(
            gateway_url(Some("flag:1"), Some("http://stack:2"), &e),
            "http://flag:1"
        );
        assert_eq!(
            gateway_url(None, Some("http://stack:2/"), &e),
            "http://stack:2"
        );
        assert_eq!(gateway_url(None, None, &e), "http://env:8080");
        assert_eq!(gateway_url(None, None, &env(&[])), DEFAULT_GATEWAY);
    }

    #[test]
    fn stores_and_reads_back_one_entry_per_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let e = env(&[("FERRY_CONFIG", d), ("OPENFAAS_CONFIG", d)]);
        let a = Credentials::Basic("YTpi".into());
        let b = Credentials::Bearer("tok".into());
        store("http://one:8080", &a, &e).unwrap();
        store("http://two:8080", &a, &e).unwrap();
        let path = store("http://one:8080", &b, &e).unwrap();
        assert_eq!(stored_credentials("http://one:8080", &e).unwrap(), Some(b));
        assert_eq!(stored_credentials("http://two:8080", &e).unwrap(), Some(a));
        assert_eq!(stored_credentials("http://three", &e).unwrap(), None);
        let mode = std::fs::metadata(&path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o077, 0);
    }
}
