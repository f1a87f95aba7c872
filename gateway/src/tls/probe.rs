//! `gateway --healthcheck` when the gateway serves HTTPS: the same blocking `GET /healthz`
//! as every service's (`ferry_runtime::healthcheck`), inside a TLS session.
//!
//! The check asks its own process on a loopback (or the bound) address, so it does not
//! verify the certificate: a certificate for `gateway.example.com` would not name
//! `127.0.0.1`, and a self-signed one has no issuer to check. It does check the handshake's
//! signatures (the server holds the key of the certificate it presents), and a gateway that
//! cannot complete a handshake, or answers anything but `200`, is unhealthy.

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;

use ferry_runtime::env::{self, Env};
use ferry_runtime::healthcheck::{self, TIMEOUT};
use ferry_runtime::listen;
use ferry_runtime::settings;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::TlsSettings;
use crate::config::DEFAULT_PORT;

/// `--healthcheck` over TLS when the TLS settings say the gateway serves HTTPS; `None` when
/// it serves plain HTTP (the shared check applies).
pub fn healthcheck(env: &impl Env) -> Option<ExitCode> {
    match TlsSettings::from_env(env) {
        Ok(Some(_)) => {}
        Ok(None) => return None,
        Err(e) => {
            eprintln!("gateway --healthcheck: {e}");
            return Some(ExitCode::FAILURE);
        }
    }
    let port = match env::parse_or(env, "port", DEFAULT_PORT, settings::number) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("gateway --healthcheck: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let address = SocketAddr::new(listen::probe_address(env), port);
    Some(healthcheck::report(
        "gateway",
        address,
        probe(address, "/healthz"),
    ))
}

/// The status code of `GET <path>` over HTTPS on `address`.
pub fn probe(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server = ServerName::IpAddress(address.ip().into());
    let session = ClientConnection::new(Arc::new(config), server).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&address, TIMEOUT)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let mut stream = StreamOwned::new(session, tcp);
    healthcheck::exchange(&mut stream, &address.to_string(), path)
}

/// Takes whatever certificate the server presents, checking only that the server signed
/// the handshake with its key (see the module documentation for why).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
