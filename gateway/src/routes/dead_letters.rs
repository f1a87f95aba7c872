//! `/system/dead-letters`: list, inspect, redrive and delete dead letters. Served by the
//! gateway from the dead-letter stream, not forwarded to the provider. An API token needs
//! `read` (listing, inspecting) or `invoke` (redriving, deleting) in the namespace of the
//! call's function: for one dead letter checked here once it is read, for a list or a
//! redrive-all by the namespace the query names (see `access::rules`).
//!
//! | route | answers |
//! |---|---|
//! | `GET /system/dead-letters?function=&namespace=&limit=&after=` | `200` [`DeadLetterPage`] |
//! | `GET /system/dead-letters/{call_id}` | `200` [`DeadLetter`]; `404` |
//! | `POST /system/dead-letters/{call_id}/redrive` | `202` the call's new [`CallStatus`]; `404`; `409` if queued or running |
//! | `POST /system/dead-letters/redrive?function=&namespace=` | `200` `{"redriven": n}`; `400` without `function` |
//! | `DELETE /system/dead-letters/{call_id}` | `204`; `404` |

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::calls::{CallStatus, DeadLetter, DeadLetterPage};
use ferry_proto::token::Scope;
use http::{StatusCode, Uri};
use serde::Serialize;

use crate::Gateway;
use crate::access::Access;
use crate::dead_letters::{ListQuery, function_param};
use crate::error::GatewayError;
use crate::redrive;
use crate::routes::async_calls::call_id;
use crate::status::Write;

/// `GET /system/dead-letters`: one page, oldest first.
pub(crate) async fn list(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
) -> Result<Json<DeadLetterPage>, GatewayError> {
    let query = ListQuery::parse(&params(&uri)?)?;
    let letters = gateway.queue.dead_letters().await?;
    Ok(Json(letters.list(&query).await?))
}

/// `GET /system/dead-letters/{call_id}`: the whole dead letter.
pub(crate) async fn show(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeadLetter>, GatewayError> {
    show_id(&gateway, &access, call_id(id)?).await
}

/// `POST /system/dead-letters/{call_id}/redrive`.
pub(crate) async fn redrive(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, GatewayError> {
    let status: CallStatus = redrive::one(&gateway, access, &call_id(id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// `{"redriven": n}`.
#[derive(Debug, Serialize)]
pub(crate) struct Redriven {
    redriven: u64,
}

/// `POST /system/dead-letters/redrive?function=<name>[&namespace=<ns>]`.
pub(crate) async fn redrive_all(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
) -> Result<Json<Redriven>, GatewayError> {
    let function = function_param(&params(&uri)?)?.ok_or_else(|| {
        GatewayError::InvalidQuery(
            "name the function whose dead letters to redrive: ?function=<name>[&namespace=<ns>]"
                .into(),
        )
    })?;
    let redriven = redrive::all(&gateway, &function).await?;
    Ok(Json(Redriven { redriven }))
}

/// `DELETE /system/dead-letters/{call_id}`: `204`; the call's status keeps its final state.
pub(crate) async fn remove(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, GatewayError> {
    remove_id(&gateway, &access, call_id(id)?).await
}

/// `GET /system/dead-letters/redrive`: the dead letter of a call whose id is `redrive`.
pub(crate) async fn show_redrive(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
) -> Result<Json<DeadLetter>, GatewayError> {
    show_id(&gateway, &access, "redrive".into()).await
}

/// `DELETE /system/dead-letters/redrive`: the same, deleted.
pub(crate) async fn remove_redrive(
    State(gateway): State<Arc<Gateway>>,
    Extension(access): Extension<Access>,
) -> Result<StatusCode, GatewayError> {
    remove_id(&gateway, &access, "redrive".into()).await
}

async fn show_id(
    gateway: &Gateway,
    access: &Access,
    id: String,
) -> Result<Json<DeadLetter>, GatewayError> {
    let statuses = gateway.queue.statuses().await?;
    let letters = gateway.queue.dead_letters().await?;
    let record = statuses.get(&id).await?;
    match letters
        .find(&id, record.as_ref().map(|r| &r.status))
        .await?
    {
        Some((_, letter)) => {
            access.demand_function(Scope::Read, &letter.function)?;
            Ok(Json(letter))
        }
        None => Err(GatewayError::DeadLetterNotFound(id)),
    }
}

async fn remove_id(
    gateway: &Gateway,
    access: &Access,
    id: String,
) -> Result<StatusCode, GatewayError> {
    let statuses = gateway.queue.statuses().await?;
    let letters = gateway.queue.dead_letters().await?;
    let record = statuses.get(&id).await?;
    let Some((sequence, letter)) = letters
        .find(&id, record.as_ref().map(|r| &r.status))
        .await?
    else {
        return Err(GatewayError::DeadLetterNotFound(id));
    };
    access.demand_function(Scope::Invoke, &letter.function)?;
    if !letters.delete(sequence).await? {
        return Err(GatewayError::DeadLetterNotFound(id));
    }
    tracing::info!(call_id = %id, sequence, "dead letter deleted");
    // The record no longer points at a dead letter (best effort: it expires anyway).
    if let Some(mut record) = record {
        let write = statuses.write(&mut record, |s| {
            let points = s.dead_letter_sequence == Some(sequence);
            s.dead_letter_sequence = None;
            points
        });
        if let Write::Failed(error) = write.await {
            tracing::debug!(call_id = %id, %error, "status not updated");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn params(uri: &Uri) -> Result<HashMap<String, String>, GatewayError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(p)| p)
        .map_err(|e| GatewayError::InvalidQuery(e.body_text()))
}
