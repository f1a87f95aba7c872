//! `tls_self_signed=true`: a certificate and key written once, at the first start, for a
//! gateway nobody gave a certificate to (`make up TLS=1`).
//!
//! The key (ECDSA P-256) is written first, mode `0600`; then a certificate for it, valid ten
//! years for the names and addresses in `tls_self_signed_hosts`, mode `0644`. Each file is
//! written whole under a temporary name and then linked into place, so it appears complete
//! or not at all, and never replaces a file that is there: a key that exists is kept and a
//! certificate made for it; a certificate that exists is used as it is (delete it to have a
//! new one made, e.g. for other host names). A certificate without its key is an error.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};

use super::TlsSettings;
use crate::error::GatewayError;

/// Common name of a generated certificate.
const COMMON_NAME: &str = "ferry gateway (self-signed)";
/// How long a generated certificate is valid.
const VALIDITY: Duration = Duration::days(3650);

/// What [`ensure`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Made {
    /// Both files were there already.
    Nothing,
    /// A certificate was written (and the key too, if it was missing).
    Certificate,
}

/// Writes whichever of the key and certificate is missing (see the module documentation).
pub(crate) fn ensure(settings: &TlsSettings, hosts: &[String]) -> Result<Made, GatewayError> {
    let (cert_file, key_file) = (&settings.cert_file, &settings.key_file);
    let cert_exists = exists(cert_file)?;
    let key_exists = exists(key_file)?;
    match (cert_exists, key_exists) {
        (true, true) => return Ok(Made::Nothing),
        (true, false) => {
            return Err(GatewayError::Tls(format!(
                "tls_cert_file {} exists but tls_key_file {} does not: supply its key, or \
                 delete the certificate to have a new pair made (tls_self_signed)",
                cert_file.display(),
                key_file.display()
            )));
        }
        _ => {}
    }
    let key = if key_exists {
        let pem = std::fs::read_to_string(key_file).map_err(|e| io_error(key_file, e))?;
        KeyPair::from_pem(&pem).map_err(|e| {
            GatewayError::Tls(format!(
                "tls_key_file {}: cannot make a certificate for this key: {e}",
                key_file.display()
            ))
        })?
    } else {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        create(key_file, key.serialize_pem().as_bytes(), 0o600)?;
        // Another process may have linked its own key first: use whichever is in place.
        let pem = std::fs::read_to_string(key_file).map_err(|e| io_error(key_file, e))?;
        KeyPair::from_pem(&pem).map_err(rcgen_error)?
    };
    let cert = params(hosts)?.self_signed(&key).map_err(rcgen_error)?;
    create(cert_file, cert.pem().as_bytes(), 0o644)?;
    Ok(Made::Certificate)
}

/// A server certificate for `hosts`, with a random serial number.
fn params(hosts: &[String]) -> Result<CertificateParams, GatewayError> {
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(rcgen_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, COMMON_NAME);
    let now = OffsetDateTime::now_utc();
    // A day back, for clocks a little behind the gateway's.
    params.not_before = now - Duration::days(1);
    params.not_after = now + VALIDITY;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| GatewayError::Tls("no random numbers for a serial number".into()))?;
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

fn exists(path: &Path) -> Result<bool, GatewayError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Creates `path` holding `content` (mode `mode`) unless it exists; the content is complete
/// before the name appears.
fn create(path: &Path, content: &[u8], mode: u32) -> Result<(), GatewayError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tls");
    let mut suffix = [0u8; 6];
    let _ = SystemRandom::new().fill(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let temp = path.with_file_name(format!(".{name}.{}.{suffix}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(content)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(&temp, e));
    }
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn io_error(path: &Path, e: io::Error) -> GatewayError {
    GatewayError::Tls(format!("{}: {e}", path.display()))
}

fn rcgen_error(e: rcgen::Error) -> GatewayError {
    GatewayError::Tls(format!("making a self-signed certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Duration;

    use super::*;
    use crate::tls::certs::Pair;

    fn settings(dir: &Path) -> TlsSettings {
        TlsSettings {
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
            reload_interval: Duration::from_secs(5),
            self_signed: Some(vec!["localhost".into(), "127.0.0.1".into()]),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_once_key_0600_and_a_pair_that_serves() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let hosts = s.self_signed.clone().unwrap();
        assert_eq!(ensure(&s, &hosts).unwrap(), Made::Certificate);
        assert_eq!(mode(&s.key_file), 0o600);
        assert_eq!(mode(&s.cert_file), 0o644);
        let first = std::fs::read(&s.cert_file).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let key = Pair::read(&s).unwrap().certified_key(&s, &provider);
        assert!(key.is_ok(), "{:?}", key.err());

        assert_eq!(ensure(&s, &hosts).unwrap(), Made::Nothing);
        assert_eq!(std::fs::read(&s.cert_file).unwrap(), first, "kept");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "no temporary files: {leftovers:?}");
    }

    #[test]
    fn a_kept_key_gets_a_new_certificate_and_a_lone_certificate_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let hosts = s.self_signed.clone().unwrap();
        ensure(&s, &hosts).unwrap();
        let key = std::fs::read(&s.key_file).unwrap();
        let cert = std::fs::read(&s.cert_file).unwrap();
        std::fs::remove_file(&s.cert_file).unwrap();
        assert_eq!(ensure(&s, &hosts).unwrap(), Made::Certificate);
        assert_eq!(std::fs::read(&s.key_file).unwrap(), key, "the key is kept");
        assert_ne!(std::fs::read(&s.cert_file).unwrap(), cert, "a new serial");
        let provider = rustls::crypto::ring::default_provider();
        assert!(Pair::read(&s).unwrap().certified_key(&s, &provider).is_ok());

        std::fs::remove_file(&s.key_file).unwrap();
        let err = ensure(&s, &hosts).unwrap_err().to_string();
        assert!(
            err.contains("tls_key_file") && err.contains("does not"),
            "{err}"
        );
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}
