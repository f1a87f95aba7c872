//! HTTPS on the gateway's port (`tls_cert_file` and `tls_key_file`, or `tls_self_signed`).
//!
//! With TLS on, the port speaks TLS only (1.2 and 1.3, rustls with ring's crypto), and ALPN
//! offers `h2` and `http/1.1`: a client that picks `h2` is served HTTP/2, any other
//! HTTP/1.1 (see `server` for the limits each gets). Without the settings the gateway serves
//! plain HTTP/1.1 as before.
//!
//! - `certs`: reading the PEM pair, the resolver every handshake asks, and reloading: the
//!   files are read again every `tls_reload_interval` (`5s`); a changed pair that is valid is
//!   served to new connections (open ones keep theirs), an invalid one is logged and the
//!   previous one kept.
//! - `self_signed`: `tls_self_signed=true` writes a self-signed pair on first start
//!   (`make up TLS=1`).
//! - `probe`: `--healthcheck` over TLS.
//! - `settings`: the environment variables.
//!
//! At start-up a missing, unreadable or mismatched pair is an error that names the setting
//! and the file, and the gateway does not start. Nothing from the key file is ever logged;
//! the served certificate's SHA-256 fingerprint is.

mod certs;
mod probe;
mod self_signed;
mod settings;

use std::sync::Arc;

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use probe::{healthcheck, probe};
pub use settings::{
    DEFAULT_RELOAD_INTERVAL, DEFAULT_SELF_SIGNED_HOSTS, SELF_SIGNED_CERT_FILE,
    SELF_SIGNED_KEY_FILE, TlsArgs, TlsSettings,
};

use crate::error::GatewayError;
use certs::{Pair, Reloader, Resolver};

/// ALPN protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS set up and serving: the acceptor for new connections and what keeps its
/// certificate current.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    reloader: Reloader,
}

impl Tls {
    /// Writes the self-signed pair if asked to and it is missing, reads and checks the
    /// pair, and builds the server configuration.
    pub(crate) fn start(settings: &TlsSettings) -> Result<Tls, GatewayError> {
        if let Some(hosts) = &settings.self_signed {
            if self_signed::ensure(settings, hosts)? == self_signed::Made::Certificate {
                tracing::info!(
                    cert_file = %settings.cert_file.display(),
                    key_file = %settings.key_file.display(),
                    hosts = %hosts.join(","),
                    "self-signed TLS certificate generated (tls_self_signed)"
                );
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = Pair::read(settings)?;
        let key = pair.certified_key(settings, &provider)?;
        tracing::info!(
            cert_file = %settings.cert_file.display(),
            sha256 = %certs::fingerprint(&key),
            reload_interval = ?settings.reload_interval,
            "TLS is on: HTTPS only, HTTP/2 and HTTP/1.1"
        );
        let resolver = Arc::new(Resolver::new(key));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| GatewayError::Tls(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            reloader: Reloader::new(settings.clone(), provider, resolver, &pair),
        })
    }

    /// Accepts TLS connections with the current certificate.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Keeps the certificate current until `cancel` (see `certs`).
    pub(crate) async fn keep_reloading(self, cancel: CancellationToken) {
        self.reloader.run(cancel).await;
    }
}

#[cfg(test)]
mod tests;
