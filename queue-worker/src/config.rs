//! `queue-worker` settings, from environment variables.

use std::time::Duration;

use ferry_proto::jetstream::{DEFAULT_QUEUE, valid_queue_name};
use ferry_runtime::env::{self, Env, EnvError};
use ferry_runtime::jetstream::NatsConfig;
use reqwest::Url;

/// Default `port` (the gateway has 8080, the provider 8081, the CE gateway's metrics 8082).
pub const DEFAULT_PORT: u16 = 8083;
/// Default `gateway_url`.
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:8080";
/// Default `max_inflight`.
pub const DEFAULT_MAX_INFLIGHT: usize = 64;
/// Default `max_ack_pending`.
pub const DEFAULT_MAX_ACK_PENDING: usize = 10_000;
/// Shortest `ack_wait` accepted: leases are renewed every third of it.
pub const MIN_ACK_WAIT: Duration = Duration::from_secs(1);

/// Everything `queue-worker` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `nats_url` & co: the NATS server and the calls stream's settings.
    pub nats: NatsConfig,
    /// `gateway_url` (`http://127.0.0.1:8080`): functions are invoked through the gateway's sync
    /// route, `<gateway_url>/function/<Function><Path>?<QueryString>`, so the gateway resolves
    /// endpoints, balances load, scales from zero and counts the call, as in OpenFaaS.
    pub gateway_url: Url,
    /// `queue_name` (`faas-request`): the queue this worker serves; its consumer is
    /// `ferry-workers-<queue_name>`, filtered on `ferry.calls.<queue_name>.>`.
    pub queue_name: String,
    /// `max_inflight` (64): calls this worker runs at once. It never holds more messages than
    /// it has free slots.
    pub max_inflight: usize,
    /// `ack_wait` (`30s`): the JetStream lease of a delivered call. Renewed every third of it
    /// while the call runs, so it bounds how fast a dead worker's calls are redelivered, not
    /// how long a call may take.
    pub ack_wait: Duration,
    /// `max_ack_pending` (10000): calls the shared consumer lets all its workers hold unacked
    /// at once; keep it above `max_inflight` times the number of workers.
    pub max_ack_pending: usize,
    /// `upstream_timeout` (`5m`): the longest one function call may take, body included. A call
    /// that runs out gets status 504.
    pub upstream_timeout: Duration,
    /// `callback_timeout` (`10s`): the longest one callback POST may take.
    pub callback_timeout: Duration,
    /// `shutdown_grace` (`30s`): on SIGTERM, how long in-flight calls get to finish; calls still
    /// running then are left unacked and JetStream redelivers them after `ack_wait`.
    pub shutdown_grace: Duration,
    /// `pull_expires` (`2s`): how long one pull request waits at the server for messages. It
    /// also bounds how long a stopping worker waits for its last pull to end.
    pub pull_expires: Duration,
    /// `port` (8083): listen port of `/healthz` (all interfaces).
    pub port: u16,
}

impl Config {
    /// Reads the configuration; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Config, EnvError> {
        let nats = NatsConfig::from_env(e)?;
        let gateway_url = env::parse_or(
            e,
            "gateway_url",
            Url::parse(DEFAULT_GATEWAY_URL).expect("default gateway URL"),
            parse_gateway_url,
        )?;
        let queue_name = env::parse_or(e, "queue_name", DEFAULT_QUEUE.to_string(), |v| {
            if valid_queue_name(v) {
                Ok(v.to_string())
            } else {
                Err("use letters, digits, '-' and '_' (at most 64)".into())
            }
        })?;
        let max_inflight = env::parse_or(e, "max_inflight", DEFAULT_MAX_INFLIGHT, |v| match v
            .parse::<usize>()
        {
            Ok(n) if (1..=100_000).contains(&n) => Ok(n),
            Ok(_) => Err("expected 1 to 100000".into()),
            Err(err) => Err(err.to_string()),
        })?;
        let max_ack_pending = env::parse_or(e, "max_ack_pending", DEFAULT_MAX_ACK_PENDING, |v| {
            match v.parse::<usize>() {
                Ok(n) if n >= max_inflight && n <= i64::MAX as usize => Ok(n),
                Ok(_) => Err(format!("must be at least max_inflight ({max_inflight})")),
                Err(err) => Err(err.to_string()),
            }
        })?;
        let at_least = |name: &str, default: Duration, min: Duration| {
            env::parse_or(e, name, default, |v| {
                let d = ferry_proto::duration::parse(v).map_err(|err| err.to_string())?;
                if d < min {
                    Err(format!(
                        "must be at least {}",
                        ferry_proto::duration::format(min)
                    ))
                } else {
                    Ok(d)
                }
            })
        };
        let ms = Duration::from_millis;
        let pull_expires = at_least("pull_expires", Duration::from_secs(2), ms(100))?;
        if pull_expires > Duration::from_secs(60) {
            return Err(EnvError {
                name: "pull_expires".into(),
                value: ferry_proto::duration::format(pull_expires),
                reason: "must be at most 60s".into(),
            });
        }
        Ok(Config {
            nats,
            gateway_url,
            queue_name,
            max_inflight,
            ack_wait: at_least("ack_wait", Duration::from_secs(30), MIN_ACK_WAIT)?,
            max_ack_pending,
            upstream_timeout: at_least("upstream_timeout", Duration::from_secs(300), ms(1))?,
            callback_timeout: at_least("callback_timeout", Duration::from_secs(10), ms(1))?,
            shutdown_grace: env::duration_or(e, "shutdown_grace", Duration::from_secs(30))?,
            pull_expires,
            port: env::number_or(e, "port", DEFAULT_PORT)?,
        })
    }

    /// Checks a configuration built by hand (fields are public) the way
    /// [`from_env`](Self::from_env) checks the environment.
    pub fn validate(&self) -> Result<(), String> {
        parse_gateway_url(self.gateway_url.as_str())?;
        if !valid_queue_name(&self.queue_name) {
            return Err(format!("queue_name {:?} is not valid", self.queue_name));
        }
        if self.max_inflight == 0 || self.max_ack_pending < self.max_inflight {
            return Err("need 1 <= max_inflight <= max_ack_pending".into());
        }
        if self.ack_wait < MIN_ACK_WAIT {
            return Err("ack_wait must be at least 1s".into());
        }
        if self.upstream_timeout.is_zero()
            || self.callback_timeout.is_zero()
            || self.pull_expires < Duration::from_millis(100)
        {
            return Err("upstream_timeout, callback_timeout and pull_expires must be > 0".into());
        }
        Ok(())
    }
}

/// An absolute `http://` or `https://` URL without query or fragment.
fn parse_gateway_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("not an absolute URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("scheme {other:?} is not http or https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment allowed".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, EnvError> {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_env(&env)
    }

    #[test]
    fn defaults() {
        let c = from(&[]).unwrap();
        assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(c.gateway_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.queue_name, "faas-request");
        assert_eq!(c.max_inflight, 64);
        assert_eq!(c.ack_wait, Duration::from_secs(30));
        assert_eq!(c.max_ack_pending, 10_000);
        assert_eq!(c.upstream_timeout, Duration::from_secs(300));
        assert_eq!(c.callback_timeout, Duration::from_secs(10));
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.pull_expires, Duration::from_secs(2));
        assert_eq!(c.port, 8083);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn values() {
        let c = from(&[
            ("nats_url", "nats://nats:4222"),
            ("gateway_url", "http://gateway:8080/prefix"),
            ("queue_name", "slow_fns"),
            ("max_inflight", "4"),
            ("ack_wait", "5m5s"),
            ("max_ack_pending", "4"),
            ("upstream_timeout", "1h"),
            ("callback_timeout", "500ms"),
            ("shutdown_grace", "0"),
            ("pull_expires", "10s"),
            ("port", "9000"),
        ])
        .unwrap();
        assert_eq!(c.nats.url, "nats://nats:4222");
        assert_eq!(c.gateway_url.as_str(), "http://gateway:8080/prefix");
        assert_eq!((c.queue_name.as_str(), c.max_inflight), ("slow_fns", 4));
        assert_eq!(c.ack_wait, Duration::from_secs(305));
        assert_eq!(c.max_ack_pending, 4);
        assert_eq!(c.upstream_timeout, Duration::from_secs(3600));
        assert_eq!(c.callback_timeout, Duration::from_millis(500));
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        assert_eq!((c.pull_expires, c.port), (Duration::from_secs(10), 9000));
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("gateway_url", "gateway:8080"),
            ("gateway_url", "ftp://gateway"),
            ("gateway_url", "http://gateway/?a=1"),
            ("queue_name", "a.b"),
            ("queue_name", "slow>"),
            ("max_inflight", "0"),
            ("max_inflight", "many"),
            ("max_ack_pending", "10"),
            ("ack_wait", "500ms"),
            ("ack_wait", "soon"),
            ("upstream_timeout", "0"),
            ("callback_timeout", "0s"),
            ("pull_expires", "2m"),
            ("pull_expires", "1ms"),
            ("port", "99999"),
            ("nats_stream_replicas", "three"),
        ] {
            let err = from(&[(name, value)]).map(|_| ()).unwrap_err();
            assert_eq!(err.name, name, "{name}={value}: {err}");
        }
    }

    #[test]
    fn validate_rejects_hand_built_nonsense() {
        let mut c = from(&[]).unwrap();
        c.max_ack_pending = 1;
        assert!(c.validate().is_err());
        let mut c = from(&[]).unwrap();
        c.queue_name = "a b".into();
        assert!(c.validate().is_err());
        let mut c = from(&[]).unwrap();
        c.ack_wait = Duration::from_millis(10);
        assert!(c.validate().is_err());
    }
}
