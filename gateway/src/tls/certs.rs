//! The served certificate and key: read from their PEM files, checked to belong together,
//! held by a [`Resolver`] that every TLS handshake asks, and replaced by [`Reloader`] when
//! the files change.
//!
//! The files are read whole every `tls_reload_interval` and compared with what was read
//! last by their SHA-256 (so a rewrite with the same content, or a touched file, is
//! nothing). A changed pair that parses and whose key matches the certificate replaces the
//! served one: handshakes from then on present it, connections already open keep the one
//! they were set up with. A changed pair that does not (a certificate replaced before its
//! key, a truncated file, a missing file) is logged once as a warning, naming the file and
//! what is wrong but never quoting it, and the previous pair stays in service; the next
//! change is tried again.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ring::digest::{Context, SHA256, digest};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::TlsSettings;
use crate::error::GatewayError;

/// The two files' contents, as read together.
pub(crate) struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pair {
    /// Reads both files.
    pub(crate) fn read(settings: &TlsSettings) -> Result<Pair, GatewayError> {
        Ok(Pair {
            cert: read(&settings.cert_file, "tls_cert_file")?,
            key: read(&settings.key_file, "tls_key_file")?,
        })
    }

    /// The SHA-256 of both contents: whether anything changed since the last read.
    fn digest(&self) -> [u8; 32] {
        let mut context = Context::new(&SHA256);
        context.update(&(self.cert.len() as u64).to_be_bytes());
        context.update(&self.cert);
        context.update(&self.key);
        let mut out = [0; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }

    /// The certificate chain and its key, ready to serve: both parsed, the key loaded by
    /// `provider` and checked to match the first certificate.
    pub(crate) fn certified_key(
        &self,
        settings: &TlsSettings,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, GatewayError> {
        let cert_file = settings.cert_file.display();
        let key_file = settings.key_file.display();
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("tls_cert_file {cert_file}: not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(tls_error(format!(
                "tls_cert_file {cert_file}: no CERTIFICATE in it"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| {
            tls_error(format!(
                "tls_key_file {key_file}: no usable PRIVATE KEY in it ({e})"
            ))
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            tls_error(format!(
                "tls_key_file {key_file} does not go with tls_cert_file {cert_file}: {e}"
            ))
        })
    }
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path)
        .map_err(|e| tls_error(format!("{setting} {}: cannot read it: {e}", path.display())))
}

fn tls_error(message: String) -> GatewayError {
    GatewayError::Tls(message)
}

/// The SHA-256 fingerprint of the served (first) certificate.
pub(crate) fn fingerprint(key: &CertifiedKey) -> String {
    sha256_fingerprint(key.cert.first().map_or(&[], |c| c.as_ref()))
}

/// The SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint -sha256` and
/// `make credentials` print it: `AB:CD:...`.
pub(crate) fn sha256_fingerprint(der: &[u8]) -> String {
    digest(&SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Answers every handshake with the current certificate and key.
#[derive(Debug)]
pub(crate) struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub(crate) fn new(key: CertifiedKey) -> Resolver {
        Resolver {
            current: RwLock::new(Arc::new(key)),
        }
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    #[cfg(test)]
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What one look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The same contents as last time (or the same failure to read them).
    Unchanged,
    /// A new pair is served.
    Replaced,
    /// The files changed but cannot be served; the previous pair stays.
    Refused,
}

/// Watches the two files and swaps a changed, valid pair into the [`Resolver`].
pub(crate) struct Reloader {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    /// The digest of the contents read last, served or refused.
    seen: Option<[u8; 32]>,
    /// The last failure to read the files, so it is logged once.
    unreadable: Option<String>,
}

impl Reloader {
    /// A reloader of the pair `pair`, which `resolver` serves now.
    pub(crate) fn new(
        settings: TlsSettings,
        provider: Arc<CryptoProvider>,
        resolver: Arc<Resolver>,
        pair: &Pair,
    ) -> Reloader {
        Reloader {
            settings,
            provider,
            resolver,
            seen: Some(pair.digest()),
            unreadable: None,
        }
    }

    /// The fingerprint of the certificate served now.
    #[cfg(test)]
    pub(crate) fn served(&self) -> String {
        fingerprint(&self.resolver.current())
    }

    /// Checks the files every `tls_reload_interval` until `cancel` (never with `0`).
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let every = self.settings.reload_interval;
        if every == Duration::ZERO {
            return;
        }
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            self.check();
        }
    }

    /// Reads the files once and serves them if they changed and are valid.
    pub(crate) fn check(&mut self) -> Checked {
        let pair = match Pair::read(&self.settings) {
            Ok(pair) => pair,
            Err(error) => {
                let message = error.to_string();
                if self.unreadable.as_ref() == Some(&message) {
                    return Checked::Unchanged;
                }
                tracing::warn!(%error, "TLS certificate not reloaded: still serving the previous one");
                self.unreadable = Some(message);
                // Whatever is read next counts as a change.
                self.seen = None;
                return Checked::Refused;
            }
        };
        self.unreadable = None;
        let digest = pair.digest();
        if self.seen == Some(digest) {
            return Checked::Unchanged;
        }
        self.seen = Some(digest);
        match pair.certified_key(&self.settings, &self.provider) {
            Ok(key) => {
                tracing::info!(
                    cert_file = %self.settings.cert_file.display(),
                    sha256 = %fingerprint(&key),
                    "TLS certificate reloaded: new connections get the new one"
                );
                self.resolver.replace(key);
                Checked::Replaced
            }
            Err(error) => {
                tracing::warn!(%error, "TLS certificate not reloaded: still serving the previous one");
                Checked::Refused
            }
        }
    }
}
