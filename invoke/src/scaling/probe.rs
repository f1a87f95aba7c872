//! Readiness probes of listed replicas during a scale-from-zero episode: the probe the
//! provider itself uses (`GET /_/health` unless the function names another path), 200 or 429
//! meaning ready.

use std::time::Duration;

use axum::body::Body;
use http::uri::{Authority, Scheme};
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt as _;
use tokio::time::Instant;

use crate::client::HttpClient;

/// The longest one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The largest readiness answer read (to keep the connection for the call that follows).
const MAX_PROBE_BODY: usize = 4096;

/// The replicas among `addresses` that answer `GET <path>` with 200 or 429.
pub(super) async fn probe_all(
    client: &HttpClient,
    addresses: &[Authority],
    path: &str,
    deadline: Instant,
) -> Vec<Authority> {
    let probes = addresses
        .iter()
        .map(|a| async move { probe(client, a, path, deadline).await.then(|| a.clone()) });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn probe(client: &HttpClient, address: &Authority, path: &str, deadline: Instant) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(address.clone())
        .path_and_query(path)
        .build()
    else {
        return false;
    };
    let Ok(request) = Request::get(uri).body(Body::empty()) else {
        return false;
    };
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let ready = matches!(
            response.status(),
            StatusCode::OK | StatusCode::TOO_MANY_REQUESTS
        );
        // Read the (tiny) body so that the connection goes back to the pool, for the call.
        http_body_util::Limited::new(response.into_body(), MAX_PROBE_BODY)
            .collect()
            .await
            .ok()?;
        Some(ready)
    };
    let until = deadline.min(Instant::now() + PROBE_TIMEOUT);
    matches!(
        tokio::time::timeout_at(until, exchange).await,
        Ok(Some(true))
    )
}
