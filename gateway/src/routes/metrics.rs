//! `GET /metrics`: the gateway's Prometheus metrics (see [`crate::metrics`]) in the text
//! format. `gateway_service_count` is refreshed from the provider first when it is more
//! than [`SERVICE_COUNT_MAX_AGE`] old; a provider that cannot be read leaves the last values
//! (logged).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;

use crate::Gateway;

/// How old `gateway_service_count` may be when scraped.
pub(crate) const SERVICE_COUNT_MAX_AGE: Duration = Duration::from_secs(1);

pub(crate) async fn render(State(gateway): State<Arc<Gateway>>) -> Response {
    let metrics = &gateway.metrics;
    if metrics.service_counts_due(SERVICE_COUNT_MAX_AGE) {
        match gateway.invoker.provider.all_functions().await {
            Ok(functions) => {
                let counts: Vec<(String, u64)> = functions
                    .iter()
                    .map(|f| {
                        (
                            format!("{}.{}", f.name, namespace(&f.namespace)),
                            f.replicas,
                        )
                    })
                    .collect();
                metrics.set_service_counts(&counts);
            }
            Err(error) => tracing::warn!(%error, "metrics: cannot read the functions' replicas"),
        }
    }
    ([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], metrics.render()).into_response()
}

fn namespace(namespace: &str) -> &str {
    if namespace.is_empty() {
        ferry_proto::name::DEFAULT_NAMESPACE
    } else {
        namespace
    }
}
