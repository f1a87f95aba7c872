//! `GET /system/queues`: each queue's depth ([`crate::queue_depth`]), for the dashboard and
//! for operators. Needs `read` (any namespace); per-function counts are given only for the
//! namespaces the caller may read.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use ferry_proto::token::Scope;

use crate::Gateway;
use crate::access::Access;
use crate::error::GatewayError;
use crate::queue_depth::QueueDepth;

/// `GET /system/queues` → `200` `[{"queue", "stored", "scheduledRetries", "pending",
/// "inFlight", "waitingWorkers", "functions"}]`; `503` without NATS.
pub(crate) async fn list(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
) -> Result<Json<Vec<QueueDepth>>, GatewayError> {
    let depths = gateway
        .queue
        .depths(|ns| access.allows(Scope::Read, ns))
        .await?;
    Ok(Json(depths))
}
