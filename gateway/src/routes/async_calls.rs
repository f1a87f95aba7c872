//! `/system/async-calls/{call_id}`: the status of an async call (`GET`), and cancelling a
//! call that is still queued (`DELETE`); `/system/async-calls?function=`: a function's recent
//! calls. Served by the gateway from the call-status bucket (and the call index), not
//! forwarded to the provider. An API token needs `read` (`GET`) or `invoke` (`DELETE`) in the
//! namespace of the call's function (`403` otherwise), checked once the record is read (for
//! the list: by the namespace the query names).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::calls::{CallStatus, valid_call_id};
use ferry_proto::token::Scope;
use futures_util::{StreamExt as _, TryStreamExt as _};
use http::StatusCode;
use http::Uri;

use crate::Gateway;
use crate::access::Access;
use crate::call_index::RecentQuery;
use crate::error::GatewayError;
use crate::status::{self, Write};

/// Status records read at once for a list.
const LIST_READS: usize = 16;

/// `GET /system/async-calls?function=name[&namespace=ns][&limit=n][&state=s]`: `200` with the
/// function's most recent calls (at most `limit`, default 20, up to 100; only those in state
/// `s` if given), newest first, as [`CallStatus`] objects; calls whose records have expired
/// are left out. `400` without a valid `function`, or with a bad `limit` or `state`.
pub(crate) async fn list(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
) -> Result<Json<Vec<CallStatus>>, GatewayError> {
    let query = RecentQuery::parse(&super::dead_letters::params(&uri)?)?;
    let ids = gateway
        .queue
        .call_index()
        .await?
        .recent(&query.function)
        .await?;
    let statuses = gateway.queue.statuses().await?;
    let function = query.function.to_string();
    let calls = futures_util::stream::iter(ids)
        .map(|id| {
            let statuses = &statuses;
            async move { statuses.get(&id).await }
        })
        .buffered(LIST_READS)
        .try_filter_map(|record| {
            let kept = record
                .map(|r| r.status)
                .filter(|s| s.function == function)
                .filter(|s| query.state.is_none_or(|state| s.state == state));
            std::future::ready(Ok(kept))
        })
        .take(query.limit)
        .try_collect()
        .await?;
    Ok(Json(calls))
}

/// `GET`: `200` with the [`CallStatus`]; `404` unknown (or expired); `400` invalid id; `503`
/// NATS unavailable.
pub(crate) async fn show(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CallStatus>, GatewayError> {
    let id = call_id(id)?;
    let statuses = gateway.queue.statuses().await?;
    match statuses.get(&id).await? {
        Some(record) => {
            access.demand_function(Scope::Read, &record.status.function)?;
            Ok(Json(record.status))
        }
        None => Err(GatewayError::CallNotFound(id)),
    }
}

/// `DELETE`: cancels a queued call (`202` with the `cancelled` status); `409` if it is
/// running or finished; `404` unknown. A call waiting for a retry has its scheduled retry
/// message deleted; a call never picked up yet is acknowledged unrun by the worker that gets
/// its message.
pub(crate) async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, GatewayError> {
    let id = call_id(id)?;
    let statuses = gateway.queue.statuses().await?;
    let Some(mut record) = statuses.get(&id).await? else {
        return Err(GatewayError::CallNotFound(id));
    };
    access.demand_function(Scope::Invoke, &record.status.function)?;
    let now = ferry_proto::time::now();
    let mut refused = None;
    let mut retry_waiting = false;
    let write = statuses.write(&mut record, |s| match status::cancelled(s, &now) {
        Ok(next) => {
            retry_waiting = s.next_attempt_at.is_some();
            *s = next;
            true
        }
        Err(why) => {
            refused = Some(why);
            false
        }
    });
    match write.await {
        Write::Written => {}
        Write::Vetoed => return Err(refused.unwrap_or_else(|| conflict(&id))),
        Write::Conflict => return Err(conflict(&id)),
        Write::Failed(error) => return Err(error.into()),
    }
    let cancelled = record.status;
    if retry_waiting {
        match gateway.queue.drop_retry(&cancelled).await {
            Ok(()) => tracing::info!(call_id = %id, "call cancelled; its scheduled retry dropped"),
            // The worker skips cancelled calls, so a retry left behind does no harm.
            Err(error) => tracing::warn!(
                call_id = %id, %error,
                "call cancelled, but its scheduled retry could not be dropped"
            ),
        }
    } else {
        // Not picked up yet: the worker acknowledges the message without running it.
        tracing::info!(call_id = %id, "call cancelled");
    }
    Ok((StatusCode::ACCEPTED, Json(cancelled)).into_response())
}

fn conflict(id: &str) -> GatewayError {
    GatewayError::Conflict(format!("the status of call {id} kept changing; try again"))
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
