//! How the function runs: forked per request ([`fork`], with the [`classic`] watchdog's
//! additions in classic mode) or once, behind a reverse proxy ([`http`]). [`Runner`] picks one
//! from the [`Config`] and gives the server one interface.

mod classic;
mod fork;
mod http;
mod process;

use std::time::Duration;

use ::http::{HeaderMap, Request, Response};

use crate::body::Body;
use crate::config::{Config, ConfigError, Mode};
use crate::error::WatchdogError;

/// The configured way of running the function.
pub(crate) enum Runner {
    /// `streaming`, `serializing` and `classic`.
    Fork(fork::ForkRunner),
    /// `http`.
    Http(Box<http::HttpRunner>),
}

impl Runner {
    /// Prepares the runner; in http mode this starts the function process.
    pub(crate) fn start(config: &Config) -> Result<Runner, WatchdogError> {
        match (config.mode, &config.upstream_url) {
            (Mode::Http, Some(upstream)) => Ok(Runner::Http(Box::new(http::HttpRunner::start(
                &config.command,
                upstream,
                config.buffer_request_body,
                config.prefix_logs,
            )?))),
            (Mode::Http, None) => Err(ConfigError::Missing {
                name: "upstream_url (or http_upstream_url)",
                hint: "mode=http needs the function's server address",
            }
            .into()),
            _ => fork::ForkRunner::new(config)
                .map(Runner::Fork)
                .map_err(|reason| {
                    ConfigError::Invalid(ferry_runtime::env::EnvError {
                        name: "content_type".into(),
                        value: config.content_type.clone(),
                        reason,
                    })
                    .into()
                }),
        }
    }

    /// Runs the function for one request, within `timeout` (`None`: no limit).
    pub(crate) async fn invoke(
        &self,
        req: Request<Body>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, WatchdogError> {
        match self {
            Runner::Fork(r) => r.invoke(req, timeout).await,
            Runner::Http(r) => r.invoke(req, timeout).await,
        }
    }

    /// False while the http-mode upstream does not accept connections; always true otherwise.
    pub(crate) async fn ready(&self) -> bool {
        match self {
            Runner::Fork(_) => true,
            Runner::Http(r) => r.upstream_accepting().await,
        }
    }

    /// Resolves (with [`WatchdogError::ChildExited`]) if the http-mode process ends; never
    /// in the fork modes.
    pub(crate) async fn exited(&self) -> WatchdogError {
        match self {
            Runner::Fork(_) => std::future::pending().await,
            Runner::Http(r) => r.exited().await,
        }
    }

    /// Stops the http-mode process (SIGTERM, then SIGKILL after a grace period).
    pub(crate) async fn terminate(&self) {
        if let Runner::Http(r) = self {
            r.terminate().await;
        }
    }
}

/// The per-request time limit: `exec_timeout`, shortened (never lengthened) by a valid,
/// positive `X-Timeout` request header.
pub(crate) fn effective_timeout(
    exec_timeout: Option<Duration>,
    headers: &HeaderMap,
) -> Option<Duration> {
    let requested = headers
        .get(ferry_proto::headers::TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ferry_proto::duration::parse(v).ok())
        .filter(|d| !d.is_zero());
    match (exec_timeout, requested) {
        (Some(limit), Some(asked)) => Some(limit.min(asked)),
        (None, asked) => asked,
        (limit, None) => limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_timeout_only_shortens() {
        let secs = Duration::from_secs;
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-timeout", v.parse().unwrap());
            h
        };
        assert_eq!(
            effective_timeout(Some(secs(30)), &HeaderMap::new()),
            Some(secs(30))
        );
        assert_eq!(
            effective_timeout(Some(secs(30)), &with("5s")),
            Some(secs(5))
        );
        assert_eq!(
            effective_timeout(Some(secs(30)), &with("2m")),
            Some(secs(30))
        );
        assert_eq!(
            effective_timeout(Some(secs(30)), &with("garbage")),
            Some(secs(30))
        );
        assert_eq!(
            effective_timeout(Some(secs(30)), &with("0")),
            Some(secs(30))
        );
        assert_eq!(
            effective_timeout(None, &with("1500ms")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(effective_timeout(None, &HeaderMap::new()), None);
    }
}
