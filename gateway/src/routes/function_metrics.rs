//! `GET /system/function-metrics?function=name[&namespace=ns][&range=1h]`: a function's
//! history (call rate, 5xx rate, async submissions, p50/p99 latency, desired replicas) from
//! the Prometheus of `faas_prometheus_host` ([`crate::prometheus`]). `200` with the series;
//! `400` bad parameters; `501` no Prometheus configured; `502` Prometheus unreachable or
//! failing. Needs `read` in the function's namespace.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use http::Uri;

use crate::Gateway;
use crate::error::GatewayError;
use crate::prometheus::{FunctionHistory, RangeQuery};

/// The handler.
pub(crate) async fn history(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
) -> Result<Json<FunctionHistory>, GatewayError> {
    let query = RangeQuery::parse(&super::dead_letters::params(&uri)?)?;
    let prometheus = gateway
        .prometheus
        .as_ref()
        .ok_or(GatewayError::NoPrometheus)?;
    Ok(Json(prometheus.history(&query).await?))
}
