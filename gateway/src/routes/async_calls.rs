//! `/system/async-calls/{call_id}`: the status of an async call (`GET`), and cancelling a
//! call that is still queued (`DELETE`). Served by the gateway from the call-status bucket,
//! not forwarded to the provider.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::calls::{CallStatus, valid_call_id};
use http::StatusCode;

use crate::Gateway;
use crate::error::GatewayError;
use crate::status::{self, MAX_CAS_ATTEMPTS, Written};

/// `GET`: `200` with the [`CallStatus`]; `404` unknown (or expired); `400` invalid id; `503`
/// NATS unavailable.
pub(crate) async fn show(
    State(gateway): State<Arc<Gateway>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CallStatus>, GatewayError> {
    let id = call_id(id)?;
    let statuses = gateway.queue.statuses().await?;
    match statuses.get(&id).await? {
        Some(record) => Ok(Json(record.status)),
        None => Err(GatewayError::CallNotFound(id)),
    }
}

/// `DELETE`: cancels a queued call (`202` with the `cancelled` status) and removes its
/// message from the calls stream; `409` if it is running or finished; `404` unknown.
pub(crate) async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, GatewayError> {
    let id = call_id(id)?;
    let statuses = gateway.queue.statuses().await?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some(record) = statuses.get(&id).await? else {
            return Err(GatewayError::CallNotFound(id));
        };
        let next = status::cancelled(&record.status, &ferry_proto::time::now())?;
        if statuses.update(&next, record.revision).await? == Written::Conflict {
            continue; // the worker changed it meanwhile: decide again
        }
        if let Some(sequence) = next.sequence {
            match gateway.queue.delete_queued(sequence, &id).await {
                Ok(deleted) => {
                    tracing::info!(call_id = %id, sequence, deleted, "call cancelled")
                }
                // The worker skips cancelled calls, so a message left behind does no harm.
                Err(error) => tracing::warn!(
                    call_id = %id, sequence, %error,
                    "call cancelled, but its queued message could not be deleted"
                ),
            }
        }
        return Ok((StatusCode::ACCEPTED, Json(next)).into_response());
    }
    Err(GatewayError::Conflict(format!(
        "the status of call {id} kept changing; try again"
    )))
}

/// The `{call_id}` path segment, validated.
pub(crate) fn call_id(id: Result<Path<String>, PathRejection>) -> Result<String, GatewayError> {
    let Path(id) = id.map_err(|e| GatewayError::InvalidCallId(e.body_text()))?;
    if valid_call_id(&id) {
        Ok(id)
    } else {
        Err(GatewayError::InvalidCallId(id))
    }
}
