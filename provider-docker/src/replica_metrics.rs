//! Reading a replica's load from its watchdog's metrics (`GET /metrics` on port 8081): the
//! two series autoscaling needs, out of Prometheus's text format.
//!
//! - `http_requests_total{code,method}`: summed over every label set (absent before the first
//!   request: 0);
//! - `http_requests_in_flight`.
//!
//! Only the watchdog's function requests are in them: the provider's `/_/ready` probes and
//! these scrapes (a listener of their own) are not counted, so a function nobody calls reads
//! as idle.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The watchdog's request counter.
pub const REQUESTS_TOTAL: &str = "http_requests_total";
/// The watchdog's in-flight gauge.
pub const IN_FLIGHT: &str = "http_requests_in_flight";
/// Largest metrics page read (a watchdog's is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// One replica's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// `http_requests_total`, all codes and methods.
    pub requests: f64,
    /// `http_requests_in_flight`.
    pub in_flight: f64,
}

impl Reading {
    /// Reads the two series out of a metrics page.
    pub fn parse(text: &str) -> Reading {
        Reading {
            requests: sum(text, REQUESTS_TOTAL),
            in_flight: sum(text, IN_FLIGHT),
        }
    }
}

/// The sum of every sample of `metric` (any labels) in Prometheus text; 0 when there is none.
/// Comments, other metrics (including `metric_bucket`-style suffixes), unparsable lines and
/// values that are not finite are skipped.
pub fn sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter_map(|line| sample_value(line.trim_start(), metric))
        .fold(0.0, |total, v| total + v)
}

/// The value of `line` if it is a sample of `metric`.
fn sample_value(line: &str, metric: &str) -> Option<f64> {
    let rest = line.strip_prefix(metric)?;
    let rest = match rest.as_bytes().first()? {
        b'{' => after_labels(rest)?,
        b' ' | b'\t' => rest,
        _ => return None,
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    value.is_finite().then_some(value)
}

/// What follows the `{...}` label set at the start of `s` (quotes and escapes respected).
fn after_labels(s: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

/// Scrapes replicas' metrics listeners.
#[derive(Debug)]
pub struct Scraper {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Scraper {
    /// A scraper giving each replica `timeout` to answer.
    pub fn new(timeout: Duration) -> Scraper {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Scraper { client, timeout }
    }

    /// The reading of the replica whose metrics listener is at `address` (`host:port`), or
    /// the reason it could not be read.
    pub async fn read(&self, address: &str) -> Result<Reading, String> {
        let uri = format!("http://{address}{}", ferry_proto::routes::METRICS)
            .parse()
            .map_err(|e| format!("bad address {address:?}: {e}"))?;
        let fetch = async {
            let resp = self.client.get(uri).await.map_err(|e| e.to_string())?;
            if resp.status() != StatusCode::OK {
                return Err(format!("status {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Reading::parse(&String::from_utf8_lossy(&body)))
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP http_request_duration_seconds Seconds ...
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{code="200",method="get",le="0.005"} 3
http_request_duration_seconds_count{code="200",method="get"} 7
# HELP http_requests_in_flight Function requests being served.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 3
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 7
http_requests_total{code="500",method="post"} 2 1700000000000
http_requests_total{code="200",method="weird} \"m"} 1
http_requests_total_other 100
http_requests_total{broken 5
http_requests_total{code="x"} NaN
"#;

    #[test]
    fn sums_every_label_set_of_the_two_series() {
        let r = Reading::parse(PAGE);
        assert_eq!(r.requests, 10.0);
        assert_eq!(r.in_flight, 3.0);
        let empty = Reading::parse("# nothing yet\nhttp_requests_in_flight 0\n");
        assert_eq!(
            empty,
            Reading {
                requests: 0.0,
                in_flight: 0.0
            }
        );
    }
}
