//! `GET /system/logs?name=&namespace=&instance=&tail=&since=&follow=`: a function's service
//! logs (every task's stdout and stderr, through the swarm manager) as NDJSON, in the same
//! format as provider-docker's (`ferry-provider-core`'s [`LogQuery`] and lines): `timestamp`
//! is the engine's RFC 3339 time, `text` the line, and `instance` the short *service* id
//! (bollard 0.21 cannot ask the service logs API for `details`, which name the task), so
//! `instance=` selects the whole service or nothing.
//!
//! The service logs API gives the lines in the order the manager has them; `follow=true`
//! keeps the stream open until the client disconnects or the service is removed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use bollard::query_parameters::LogsOptionsBuilder;
use ferry_provider_core::logs::{LogQuery, encode, ndjson_response};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::error::SwarmError;
use crate::provider::SwarmProvider;

/// The logs route.
pub fn routes() -> Router<Arc<SwarmProvider>> {
    Router::new().route(ferry_proto::routes::SYSTEM_LOGS, get(logs))
}

async fn logs(
    State(p): State<Arc<SwarmProvider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, SwarmError> {
    let query = LogQuery::parse::<SwarmError>(&q)?;
    let service = p.service_id(&query.function).await?;
    let mut options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(query.follow);
    if let Some(n) = query.tail {
        options = options.tail(&n.to_string());
    }
    if let Some(since) = query.since {
        options = options.since(i32::try_from(since.unix_timestamp()).unwrap_or(i32::MAX));
    }
    let mut stream = p.docker().service_logs(&service, Some(options.build()));
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(Ok(chunk)) = stream.next().await {
            let raw = chunk.to_string();
            for line in raw.lines().filter(|l| !l.is_empty()) {
                if !query.wants(&service) {
                    continue;
                }
                let (timestamp, text) = line.split_once(' ').unwrap_or((line, ""));
                let bytes = encode(&query.function, &service, timestamp.into(), text.into());
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(ndjson_response(rx))
}
