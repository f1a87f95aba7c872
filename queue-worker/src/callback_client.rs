//! The HTTP client callbacks are POSTed with, held to the callback destination policy
//! (`callback_allow`, `callback_deny`: [`ferry_runtime::callback_guard`]).
//!
//! A callback URL's host is checked twice: as written, before anything is sent
//! ([`CallbackClient::check`]: an IP literal never goes through DNS), and, for a name, by the
//! client's own DNS resolver, which resolves it and hands the connector only the addresses the
//! policy allows. The connection is therefore made to an address that was checked, whatever
//! the name resolved to at submission (DNS rebinding gains nothing). Redirects are not
//! followed and no proxy is used, so nothing else decides where a callback goes. A refusal is
//! a final failure of the delivery ([`refusal`] finds it in a client error): the call ends
//! `callback_failed` at once instead of being retried.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_runtime::callback_guard::{CallbackGuard, GuardError};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::WorkerError;

/// How long connecting to a callback receiver (DNS included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// reqwest with the guard as its resolver, and the guard for hosts that are addresses.
#[derive(Debug, Clone)]
pub struct CallbackClient {
    http: reqwest::Client,
    guard: Arc<CallbackGuard>,
}

impl CallbackClient {
    /// A client held to `guard`, keeping up to `idle_per_host` idle connections per receiver.
    /// Install the TLS provider first (`ferry_runtime::tls::install`).
    pub fn new(guard: CallbackGuard, idle_per_host: usize) -> Result<CallbackClient, WorkerError> {
        let guard = Arc::new(guard);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver(guard.clone()))
            .user_agent(concat!("ferry-queue-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(idle_per_host)
            .tcp_nodelay(true)
            .build()
            .map_err(WorkerError::HttpClient)?;
        Ok(CallbackClient { http, guard })
    }

    /// The client. Every connection it makes to a named host goes through the guard; check
    /// the URL first ([`check`](Self::check)) for hosts that are addresses.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Checks `url`'s host as written: an address in full, a name against the name entries
    /// (its addresses are checked when it is resolved).
    pub fn check(&self, url: &Url) -> Result<(), GuardError> {
        let host = url.host_str().unwrap_or_default();
        self.guard.check_host(host)
    }
}

/// Resolves callback hosts, returning only the addresses the guard allows.
struct GuardedResolver(Arc<CallbackGuard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let allowed = guard.resolve(name.as_str()).await?;
            // Port 0: the connector uses the URL's port.
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The guard's error behind a client error (a refused destination, or a failed look-up), if
/// that is what it is.
pub fn refusal<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a GuardError> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<GuardError>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(deny: &str) -> CallbackClient {
        ferry_runtime::tls::install();
        CallbackClient::new(CallbackGuard::new("", deny).unwrap(), 1).unwrap()
    }

    #[test]
    fn addresses_are_checked_as_written() {
        let c = client("");
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(c.check(&url("http://127.0.0.1:9/cb")).is_ok());
        assert!(c.check(&url("http://localhost/cb")).is_ok());
        for refused in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://2852039166/",
            "https://metadata.google.internal/computeMetadata/v1/",
        ] {
            let err = c.check(&url(refused)).unwrap_err();
            assert!(err.is_final(), "{refused}: {err}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_denied_address_is_not_connected_to() {
        // Something listens, so only the guard can stop the request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = client("127.0.0.0/8, ::1");
        let url = format!("http://localhost:{port}/cb");
        assert!(c.check(&Url::parse(&url).unwrap()).is_ok(), "no DNS yet");
        let err = c.http().post(&url).send().await.unwrap_err();
        let found = refusal(&err).unwrap_or_else(|| panic!("not the guard's: {err:?}"));
        assert!(
            matches!(found, GuardError::Denied { .. }) && found.is_final(),
            "{found}"
        );
        assert!(
            found.to_string().contains("matches callback_deny entry"),
            "{found}"
        );
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a connection was made");
    }

    #[test]
    fn other_errors_are_not_refusals() {
        let io = std::io::Error::other("reset");
        assert!(refusal(&io).is_none());
    }
}
