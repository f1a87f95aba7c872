//! A function's history from Prometheus, for the dashboard: `GET /system/function-metrics`
//! runs a fixed set of range queries over the gateway's own metrics (summed over every
//! gateway Prometheus scrapes) and answers their points. Only with `faas_prometheus_host`
//! set (OpenFaaS's gateway setting of the same name); the function's name is validated
//! before it is put into a query, and nothing else of the request reaches Prometheus.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use ferry_invoke::HttpClient;
use ferry_proto::FunctionRef;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};

use crate::dead_letters::function_param;
use crate::error::GatewayError;

/// `range` when none is given.
const DEFAULT_RANGE: Duration = Duration::from_secs(3600);
/// Shortest and longest `range`.
const RANGE_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(7 * 24 * 3600));
/// Points per series, about.
const POINTS: u64 = 120;
/// Shortest step between points, and shortest rate window (four 15 s scrapes).
const MIN_STEP: u64 = 5;
const MIN_WINDOW: u64 = 60;
/// A whole answer from Prometheus may take this long.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from Prometheus.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// `GET /system/function-metrics` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeQuery {
    pub(crate) function: FunctionRef,
    pub(crate) range: Duration,
}

impl RangeQuery {
    /// From `function` (required), `namespace` and `range` (`1h` default, `1m` to `7d`).
    pub(crate) fn parse(params: &HashMap<String, String>) -> Result<RangeQuery, GatewayError> {
        let function = function_param(params)?.ok_or_else(|| {
            GatewayError::InvalidQuery("function is required: ?function=<name>".into())
        })?;
        let range = match params
            .get("range")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => DEFAULT_RANGE,
            Some(v) => ferry_runtime::settings::duration(v)
                .ok()
                .filter(|r| (RANGE_BOUNDS.0..=RANGE_BOUNDS.1).contains(r))
                .ok_or_else(|| {
                    GatewayError::InvalidQuery(format!(
                        "range must be a duration from 1m to 168h, like 15m or 6h (not {v:?})"
                    ))
                })?,
        };
        Ok(RangeQuery { function, range })
    }
}

/// The answer: one series per figure, each `[[unix seconds, value], ...]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionHistory {
    pub(crate) function: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) step: u64,
    /// Sync calls answered per second.
    pub(crate) rate: Vec<(f64, f64)>,
    /// Sync calls answered with a 5xx per second.
    pub(crate) error_rate: Vec<(f64, f64)>,
    /// Async calls accepted per second.
    pub(crate) async_rate: Vec<(f64, f64)>,
    /// Sync call latency quantiles, seconds.
    pub(crate) p50: Vec<(f64, f64)>,
    pub(crate) p99: Vec<(f64, f64)>,
    /// Desired replicas.
    pub(crate) replicas: Vec<(f64, f64)>,
}

/// The PromQL of each figure for function label `f` and rate window `w` (seconds).
fn queries(f: &str, w: u64) -> [String; 6] {
    let calls = format!("gateway_function_invocation_total{{function_name=\"{f}\"}}");
    let errors =
        format!("gateway_function_invocation_total{{function_name=\"{f}\",code=~\"5..\"}}");
    let accepted =
        format!("gateway_async_submissions_total{{function_name=\"{f}\",outcome=\"accepted\"}}");
    let buckets = format!("gateway_functions_seconds_bucket{{function_name=\"{f}\"}}");
    let quantile =
        |q: &str| format!("histogram_quantile({q}, sum by (le) (rate({buckets}[{w}s])))");
    [
        format!("sum(rate({calls}[{w}s]))"),
        format!("sum(rate({errors}[{w}s]))"),
        format!("sum(rate({accepted}[{w}s]))"),
        quantile("0.5"),
        quantile("0.99"),
        format!("max(gateway_service_count{{function_name=\"{f}\"}})"),
    ]
}

/// Prometheus' HTTP API at `base` (`http://host:port`).
#[derive(Clone)]
pub(crate) struct Prometheus {
    base: String,
    client: HttpClient,
}

impl Prometheus {
    pub(crate) fn new(base: String, client: HttpClient) -> Self {
        Prometheus { base, client }
    }

    /// The history of `q.function` over `q.range`, ending now.
    pub(crate) async fn history(&self, q: &RangeQuery) -> Result<FunctionHistory, GatewayError> {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let range = q.range.as_secs();
        let step = range.div_ceil(POINTS).max(MIN_STEP);
        let start = end.saturating_sub(range);
        let function = q.function.to_string();
        let [rate, errors, accepted, p50, p99, replicas] = queries(&function, step.max(MIN_WINDOW));
        let series = |query: String| self.range(query, start, end, step);
        let all = tokio::time::timeout(QUERY_TIMEOUT, async {
            tokio::try_join!(
                series(rate),
                series(errors),
                series(accepted),
                series(p50),
                series(p99),
                series(replicas)
            )
        })
        .await
        .map_err(|_| GatewayError::Prometheus(format!("no answer within {QUERY_TIMEOUT:?}")))??;
        Ok(FunctionHistory {
            function,
            start,
            end,
            step,
            rate: all.0,
            error_rate: all.1,
            async_rate: all.2,
            p50: all.3,
            p99: all.4,
            replicas: all.5,
        })
    }

    /// One range query's points (the first series; none when it has no data).
    async fn range(
        &self,
        query: String,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<Vec<(f64, f64)>, GatewayError> {
        let uri = format!(
            "{}/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            self.base,
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let request = Request::get(uri)
            .body(Body::empty())
            .map_err(|e| GatewayError::Internal(format!("a Prometheus request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| GatewayError::Prometheus(ferry_invoke::client::error_chain(&e)))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| GatewayError::Prometheus(format!("reading its answer: {e}")))?
            .to_bytes();
        points(status, &body)
    }
}

/// Prometheus' answer to a range query.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    values: Vec<(f64, String)>,
}

/// The points of the first series of an answer; `NaN` and infinite values (a quantile with
/// no calls in its window) are left out.
fn points(status: StatusCode, body: &[u8]) -> Result<Vec<(f64, f64)>, GatewayError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        GatewayError::Prometheus(format!("an answer that is not its API's JSON ({status})"))
    })?;
    if answer.status != "success" {
        let why = answer.error.unwrap_or_else(|| status.to_string());
        return Err(GatewayError::Prometheus(format!("the query failed: {why}")));
    }
    let series = answer.data.and_then(|d| d.result.into_iter().next());
    Ok(series
        .map(|s| s.values)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(t, v)| {
            v.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| (t, v))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_function_is_required_and_the_range_bounded() {
        let q = RangeQuery::parse(&params(&[("function", "echo")])).unwrap();
        assert_eq!(
            (q.function.to_string(), q.range),
            ("echo.openfaas-fn".into(), DEFAULT_RANGE)
        );
        let q = RangeQuery::parse(&params(&[("function", "echo.dev"), ("range", "15m")])).unwrap();
        assert_eq!(q.range, Duration::from_secs(900));
        for bad in [
            vec![],
            vec![("function", "a\"}or vector(1)")],
            vec![("function", "echo"), ("range", "30s")],
            vec![("function", "echo"), ("range", "30d")],
            vec![("function", "echo"), ("range", "soon")],
        ] {
            let err = RangeQuery::parse(&params(&bad)).unwrap_err();
            assert!(matches!(err, GatewayError::InvalidQuery(_)), "{bad:?}");
        }
    }

    #[test]
    fn queries_name_the_function_and_window() {
        let q = queries("echo.openfaas-fn", 60);
        assert_eq!(
            q[0],
            "sum(rate(gateway_function_invocation_total{function_name=\"echo.openfaas-fn\"}[60s]))"
        );
        assert!(q[4].starts_with("histogram_quantile(0.99, sum by (le) (rate("));
    }

    #[test]
    fn points_skip_nan_and_report_failures() {
        let ok = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1700000000,"0.5"],[1700000015,"NaN"],[1700000030,"2"]]}]}}"#;
        assert_eq!(
            points(StatusCode::OK, ok).unwrap(),
            [(1_700_000_000.0, 0.5), (1_700_000_030.0, 2.0)]
        );
        let empty = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(points(StatusCode::OK, empty).unwrap().is_empty());
        let failed = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(
            points(StatusCode::BAD_REQUEST, failed),
            Err(GatewayError::Prometheus(m)) if m.contains("parse error")
        ));
        assert!(points(StatusCode::OK, b"<html>").is_err());
    }
}
