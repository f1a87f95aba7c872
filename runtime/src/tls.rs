//! TLS for outbound HTTPS (callbacks, the CLI).
//!
//! reqwest is built with rustls but without a bundled crypto provider (`rustls-no-provider`):
//! compiling two providers into one binary makes rustls panic at the first TLS connection
//! (DESIGN §9). The process therefore installs ring's provider once, before it builds any
//! HTTP client; [`install`] does that and may be called any number of times.

/// Installs rustls's ring crypto provider as the process default (once; later calls and a
/// provider installed by someone else are fine).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
