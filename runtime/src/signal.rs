//! Shutdown signals.
//!
//! Containers are stopped with SIGTERM (Docker, Kubernetes); a developer at a terminal
//! presses Ctrl-C (SIGINT). Both mean "stop accepting work, finish what is in flight, exit".

/// The future [`shutdown`] returns.
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Resolves when the process receives SIGTERM or SIGINT (boxed, to be passed by name).
pub fn shutdown() -> Shutdown {
    Box::pin(wait())
}

/// Resolves when the process receives SIGTERM or SIGINT.
///
/// If a handler cannot be installed (which only happens when the runtime has no signal
/// driver), the future falls back to waiting for Ctrl-C alone, and logs why.
async fn wait() {
    use tokio::signal::unix::{SignalKind, signal};

    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}
