//! Test helpers: the real gateway on a loopback port in front of a given provider
//! ([`start_gateway`]); the stand-in provider and replica of `ferry_invoke::test_support`.

use std::net::SocketAddr;

pub(crate) use ferry_invoke::test_support::{Cold, serve};

/// The gateway (its real `run`) on a free loopback port, in front of the provider at
/// `provider_url`, configured by `extra` env pairs on top; NATS points where nothing listens
/// (sync calls and `/system` forwarding do not need it). It stops when the sender drops.
pub(crate) async fn start_gateway(
    provider_url: &str,
    extra: &[(&str, &str)],
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut env: std::collections::HashMap<&str, &str> = [
        ("functions_provider_url", provider_url),
        ("nats_url", "nats://127.0.0.1:1"),
    ]
    .into();
    env.extend(extra.iter().copied());
    let config = crate::Config::from_env(&env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        crate::run(config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}
