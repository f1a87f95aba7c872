//! `GET /healthz`: whether the gateway can do its job, i.e. NATS is connected and the
//! provider answers its own `/healthz`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Gateway;

/// The `/healthz` body: `{"status":"ok","nats":"connected","provider":"ok"}`, or
/// `"status":"unavailable"` with the failing dependency named and a `message` saying why.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    nats: &'static str,
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub(crate) async fn healthz(State(gateway): State<Arc<Gateway>>) -> Response {
    let nats = gateway.queue.is_connected();
    let provider = gateway.invoker.provider.health().await;
    let mut problems = Vec::new();
    if !nats {
        problems.push(format!(
            "not connected to NATS at {}",
            ferry_runtime::redact::url(&gateway.config.nats.url)
        ));
    }
    if let Err(e) = &provider {
        problems.push(format!("provider: {e}"));
    }
    let ok = problems.is_empty();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" },
        nats: if nats { "connected" } else { "disconnected" },
        provider: if provider.is_ok() {
            "ok"
        } else {
            "unavailable"
        },
        message: (!ok).then(|| problems.join("; ")),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
