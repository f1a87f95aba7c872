//! The TLS settings: `tls_cert_file` and `tls_key_file` (both or neither),
//! `tls_reload_interval`, and `tls_self_signed` with `tls_self_signed_hosts`.

use std::path::PathBuf;
use std::time::Duration;

use ferry_runtime::auth::AuthConfig;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::settings;
use rustls::pki_types::ServerName;

/// `tls_reload_interval` default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// `tls_self_signed_hosts` default: the names a client on the gateway's own machine uses.
pub const DEFAULT_SELF_SIGNED_HOSTS: &str = "localhost,127.0.0.1,::1";
/// Certificate file name in `secret_mount_path` when `tls_self_signed` is on and
/// `tls_cert_file` unset.
pub const SELF_SIGNED_CERT_FILE: &str = "tls.crt";
/// Key file name in `secret_mount_path` when `tls_self_signed` is on and `tls_key_file`
/// unset.
pub const SELF_SIGNED_KEY_FILE: &str = "tls.key";

/// How the gateway serves HTTPS; `None` in [`crate::Config::tls`] means plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls_cert_file`: PEM certificate chain, the server's certificate first. With
    /// `tls_self_signed` and unset: `<secret_mount_path>/tls.crt`.
    pub cert_file: PathBuf,
    /// `tls_key_file`: PEM private key (PKCS#8, PKCS#1 or SEC1). With `tls_self_signed` and
    /// unset: `<secret_mount_path>/tls.key`.
    pub key_file: PathBuf,
    /// `tls_reload_interval` (`5s`): how often the two files are read again; a changed,
    /// valid pair replaces the served one for new connections. `0`: never.
    pub reload_interval: Duration,
    /// `tls_self_signed` (`false`) and `tls_self_signed_hosts`
    /// (`localhost,127.0.0.1,::1`): when on, the names and addresses of the self-signed
    /// certificate written at start-up if neither file exists.
    pub self_signed: Option<Vec<String>>,
}

/// The TLS settings as declared (clap); [`TlsSettings::resolve`] makes them one
/// [`TlsSettings`] or plain HTTP.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct TlsArgs {
    /// PEM certificate chain (the gateway's first): serve HTTPS only (HTTP/2 and HTTP/1.1 by
    /// ALPN) on port; needs tls_key_file. Unset: plain HTTP.
    #[arg(long = "tls_cert_file", env = "tls_cert_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of tls_cert_file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "tls_key_file", env = "tls_key_file")]
    pub tls_key_file: Option<PathBuf>,
    /// How often both files are read again: a changed valid pair is served to new
    /// connections, a broken one logged and ignored; 0 = never.
    #[arg(long = "tls_reload_interval", env = "tls_reload_interval", default_value = "5s",
          value_parser = settings::duration)]
    pub tls_reload_interval: Duration,
    /// Write a self-signed pair on first start if none exists, at tls_cert_file/tls_key_file
    /// or secret_mount_path/tls.crt, tls.key.
    #[arg(long = "tls_self_signed", env = "tls_self_signed", default_value = "false",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub tls_self_signed: bool,
    /// DNS names and IP addresses of that certificate, comma-separated.
    #[arg(long = "tls_self_signed_hosts", env = "tls_self_signed_hosts",
          default_value = DEFAULT_SELF_SIGNED_HOSTS, value_parser = hosts)]
    pub tls_self_signed_hosts: std::vec::Vec<String>,
}

/// The TLS settings with the `secret_mount_path` their self-signed default lives in.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
struct TlsEnv {
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthConfig,
}

impl TlsSettings {
    /// Reads the TLS settings: `None` when neither a certificate nor `tls_self_signed` is
    /// given. Every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Option<TlsSettings>, EnvError> {
        let TlsEnv { tls, auth } = settings::from_env(e)?;
        TlsSettings::resolve(tls, &auth)
    }

    /// The settings `args` give (self-signed files default to `auth`'s folder): `None` for
    /// plain HTTP; a certificate without a key (or the reverse) is an error naming the
    /// missing one.
    pub fn resolve(args: TlsArgs, auth: &AuthConfig) -> Result<Option<TlsSettings>, EnvError> {
        let (cert_file, key_file) = match (args.tls_cert_file, args.tls_key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(cert), None) => return Err(missing("tls_key_file", "tls_cert_file", cert)),
            (None, Some(key)) => return Err(missing("tls_cert_file", "tls_key_file", key)),
            (None, None) if args.tls_self_signed => {
                let dir = &auth.secret_mount_path;
                (
                    dir.join(SELF_SIGNED_CERT_FILE),
                    dir.join(SELF_SIGNED_KEY_FILE),
                )
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(TlsSettings {
            cert_file,
            key_file,
            reload_interval: args.tls_reload_interval,
            self_signed: args.tls_self_signed.then_some(args.tls_self_signed_hosts),
        }))
    }
}

/// `absent` is unset while `present` is set (to `value`).
fn missing(absent: &str, present: &str, value: PathBuf) -> EnvError {
    let value = value.display().to_string();
    EnvError {
        name: absent.to_string(),
        value: String::new(),
        reason: format!(
            "unset while {present}={value:?} is set: give both the certificate and the key \
             (PEM files), or neither for plain HTTP"
        ),
    }
}

/// A comma-separated list of DNS names and IP addresses, at least one.
fn hosts(v: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err("expected at least one host name or IP address".into());
    }
    if let Some(bad) = list
        .iter()
        .find(|h| ServerName::try_from(h.as_str()).is_err())
    {
        return Err(format!("{bad:?} is neither a DNS name nor an IP address"));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<TlsSettings>, EnvError> {
        let e: HashMap<&str, &str> = pairs.iter().copied().collect();
        TlsSettings::from_env(&e)
    }

    #[test]
    fn neither_file_is_plain_http() {
        assert_eq!(settings(&[]).unwrap(), None);
        assert_eq!(settings(&[("tls_reload_interval", "1s")]).unwrap(), None);
        assert_eq!(settings(&[("tls_self_signed", "false")]).unwrap(), None);
    }

    #[test]
    fn both_files_turn_tls_on() {
        let s = settings(&[("tls_cert_file", "/c.pem"), ("tls_key_file", "/k.pem")])
            .unwrap()
            .unwrap();
        assert_eq!(s.cert_file, PathBuf::from("/c.pem"));
        assert_eq!(s.key_file, PathBuf::from("/k.pem"));
        assert_eq!(s.reload_interval, Duration::from_secs(5));
        assert_eq!(s.self_signed, None);
        let s = settings(&[
            ("tls_cert_file", "/c.pem"),
            ("tls_key_file", "/k.pem"),
            ("tls_reload_interval", "0"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.reload_interval, Duration::ZERO, "0: never reloaded");
    }

    #[test]
    fn one_file_without_the_other_names_the_missing_one() {
        let err = settings(&[("tls_cert_file", "/c.pem")]).unwrap_err();
        assert_eq!(err.name, "tls_key_file");
        assert!(err.reason.contains("tls_cert_file=\"/c.pem\""), "{err}");
        let err = settings(&[("tls_key_file", "/k.pem"), ("tls_cert_file", " ")]).unwrap_err();
        assert_eq!(err.name, "tls_cert_file", "an empty value is unset");
    }

    #[test]
    fn self_signed_defaults_to_the_secret_folder() {
        let s = settings(&[("tls_self_signed", "1"), ("secret_mount_path", "/s")])
            .unwrap()
            .unwrap();
        assert_eq!(s.cert_file, PathBuf::from("/s/tls.crt"));
        assert_eq!(s.key_file, PathBuf::from("/s/tls.key"));
        assert_eq!(
            s.self_signed.unwrap(),
            ["localhost", "127.0.0.1", "::1"].map(String::from)
        );
        let s = settings(&[
            ("tls_self_signed", "true"),
            ("tls_self_signed_hosts", "gateway, ferry.example ,10.0.0.5"),
            ("tls_cert_file", "/c.pem"),
            ("tls_key_file", "/k.pem"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.cert_file, PathBuf::from("/c.pem"));
        assert_eq!(
            s.self_signed.unwrap(),
            ["gateway", "ferry.example", "10.0.0.5"].map(String::from)
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("tls_self_signed", "maybe"),
            ("tls_reload_interval", "often"),
            ("tls_self_signed_hosts", "bad name!"),
            ("tls_self_signed_hosts", ","),
        ] {
            let err = settings(&[(name, value)]).expect_err(value);
            assert_eq!(err.name, name, "{err}");
        }
    }
}
