use std::path::Path;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};

use super::certs::Checked;
use super::*;

/// A self-signed certificate for `localhost` named `cn`, and its key, as PEM.
fn pair(cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The fingerprint of a PEM certificate, as the gateway logs it.
fn fingerprint(pem: &str) -> String {
    let der: rustls::pki_types::CertificateDer<'_> =
        rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
    super::certs::sha256_fingerprint(&der)
}

fn settings(dir: &Path) -> TlsSettings {
    TlsSettings {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        reload_interval: Duration::from_secs(5),
        self_signed: None,
    }
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
}

fn start_error(s: &TlsSettings) -> String {
    match Tls::start(s) {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unusable_pairs_stop_the_start_naming_the_setting_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let err = start_error(&s);
    assert!(
        err.contains("tls_cert_file") && err.contains("cert.pem"),
        "{err}"
    );

    let (cert_a, key_a) = pair("a");
    let (_, key_b) = pair("b");
    write(&s.cert_file, &cert_a);
    let err = start_error(&s);
    assert!(
        err.contains("tls_key_file") && err.contains("key.pem"),
        "{err}"
    );

    write(&s.key_file, &key_b);
    let err = start_error(&s);
    assert!(err.contains("does not go with tls_cert_file"), "{err}");

    write(&s.key_file, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n");
    let err = start_error(&s);
    assert!(err.contains("tls_key_file"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "the key is not quoted: {err}");

    write(&s.cert_file, &key_a);
    write(&s.key_file, &key_a);
    let err = start_error(&s);
    assert!(err.contains("no CERTIFICATE"), "{err}");

    write(&s.cert_file, &cert_a);
    assert!(Tls::start(&s).is_ok());
}

#[test]
fn a_changed_valid_pair_is_served_and_a_broken_one_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (cert_a, key_a) = pair("a");
    let (cert_b, key_b) = pair("b");
    write(&s.cert_file, &cert_a);
    write(&s.key_file, &key_a);
    let mut reloader = Tls::start(&s).unwrap().reloader;
    assert_eq!(reloader.served(), fingerprint(&cert_a));
    assert_eq!(reloader.check(), Checked::Unchanged);

    // The certificate replaced before its key: refused until the key follows.
    write(&s.cert_file, &cert_b);
    assert_eq!(reloader.check(), Checked::Refused);
    assert_eq!(reloader.check(), Checked::Unchanged, "warned once");
    assert_eq!(reloader.served(), fingerprint(&cert_a));
    write(&s.key_file, &key_b);
    assert_eq!(reloader.check(), Checked::Replaced);
    assert_eq!(reloader.served(), fingerprint(&cert_b));
    assert_eq!(reloader.check(), Checked::Unchanged);

    // A truncated certificate, then a missing key: the previous pair stays.
    write(&s.cert_file, &cert_a[..cert_a.len() / 2]);
    assert_eq!(reloader.check(), Checked::Refused);
    assert_eq!(reloader.check(), Checked::Unchanged);
    std::fs::remove_file(&s.key_file).unwrap();
    assert_eq!(reloader.check(), Checked::Refused);
    assert_eq!(reloader.check(), Checked::Unchanged);
    assert_eq!(reloader.served(), fingerprint(&cert_b));

    write(&s.cert_file, &cert_a);
    write(&s.key_file, &key_a);
    assert_eq!(reloader.check(), Checked::Replaced);
    assert_eq!(reloader.served(), fingerprint(&cert_a));
}

#[test]
fn self_signed_writes_a_pair_it_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.self_signed = Some(vec!["localhost".into(), "gateway".into()]);
    let reloader = Tls::start(&s).unwrap().reloader;
    let cert = std::fs::read_to_string(&s.cert_file).unwrap();
    assert_eq!(reloader.served(), fingerprint(&cert));
    // A second start reads what the first wrote.
    let again = Tls::start(&s).unwrap().reloader;
    assert_eq!(again.served(), fingerprint(&cert));
}
