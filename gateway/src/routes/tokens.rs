//! `/system/tokens`: the API-token admin API, served by the gateway from the `ferry-tokens`
//! bucket (see [`crate::tokens`]), never forwarded to the provider. Only the admin (the
//! basic-auth credentials, or a token with the `admin` scope) reaches these routes: the
//! `auth::require` layer refuses everyone else.
//!
//! | route | answers |
//! |---|---|
//! | `POST /system/tokens` `{"name", "scopes", "namespaces"}` | `201` [`NewToken`], the token shown this once; `400` invalid name, scope or namespaces; `409` name in use; `403` with `basic_auth=false` |
//! | `GET /system/tokens` | `200` `[TokenInfo]` by name: names, scopes, namespaces, creation times, never a token or its hash |
//! | `DELETE /system/tokens/{name}` | `204`; `404` unknown |
//!
//! All of them answer `503` while NATS is unavailable.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_proto::token::{NewToken, TokenInfo, TokenRequest};
use http::StatusCode;

use crate::Gateway;
use crate::error::GatewayError;

/// `POST /system/tokens`.
pub(crate) async fn create(
    State(gateway): State<Arc<Gateway>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, GatewayError> {
    if gateway.credentials.is_none() {
        return Err(GatewayError::TokensNeedAuth);
    }
    let body = body.map_err(|e| GatewayError::BadBody(e.body_text()))?;
    let request: TokenRequest = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::InvalidRequest(format!(
            "expected {{\"name\": ..., \"scopes\": [...], \"namespaces\": [...]}}: {e}"
        ))
    })?;
    let created: NewToken = gateway.tokens.create(request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /system/tokens`.
pub(crate) async fn list(
    State(gateway): State<Arc<Gateway>>,
) -> Result<Json<Vec<TokenInfo>>, GatewayError> {
    Ok(Json(gateway.tokens.list().await?))
}

/// `DELETE /system/tokens/{name}`: `204`.
pub(crate) async fn remove(
    State(gateway): State<Arc<Gateway>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, GatewayError> {
    let Path(name) = name.map_err(|e| GatewayError::InvalidRequest(e.body_text()))?;
    gateway.tokens.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
