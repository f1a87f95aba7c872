//! Stand-ins for tests of scaling from zero (here and in the crates built on this one, with
//! the `test-support` feature): a provider that knows one function, `cold`, and starts its one
//! replica (an in-process HTTP server) when asked to scale it up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_proto::labels::SCALE_MIN;
use ferry_proto::{Endpoint, FunctionEndpoints, FunctionStatus, ScaleServiceRequest, Wake};
use tokio::time::Instant;

/// The function the cold provider knows.
pub const COLD: &str = "cold";

/// Serves `router` on a free loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// What the cold provider and its replica do and saw.
#[derive(Clone)]
pub struct Cold {
    /// Desired replicas of `cold`.
    pub desired: Arc<AtomicU64>,
    /// Scale requests received, with their replica counts.
    pub scaled_to: Arc<Mutex<Vec<u64>>>,
    /// Endpoint look-ups received.
    pub lookups: Arc<AtomicUsize>,
    /// Calls (other than `/_/health`) the replica answered.
    pub calls: Arc<AtomicUsize>,
    /// How long after it is started the replica answers `/_/health` with 200; `None`: never.
    pub start_time: Option<Duration>,
    /// When the replica was started (the first scale-up).
    started_at: Arc<Mutex<Option<Instant>>>,
    /// Whether the provider itself reports the replica ready once it is (else it never
    /// does, as when its probe cache lags: only the gateway's own probes can tell).
    pub provider_probes: Arc<AtomicBool>,
    /// Whether the scale answer says the replica was thawed and where it listens (a frozen
    /// replica), rather than that a new one was created.
    pub thaws: Arc<AtomicBool>,
    /// The replica's address.
    pub replica: SocketAddr,
    /// The provider's address.
    pub provider: SocketAddr,
}

impl Cold {
    /// A provider whose `cold` function has `desired` replicas (`com.openfaas.scale.min` = 2),
    /// and its replica, ready `start_time` after it was started (`None`: never). With
    /// `desired > 0` the replica counts as started now.
    pub async fn start(desired: u64, start_time: Option<Duration>) -> Cold {
        let mut cold = Cold {
            desired: Arc::new(AtomicU64::new(desired)),
            scaled_to: Arc::default(),
            lookups: Arc::default(),
            calls: Arc::default(),
            start_time,
            started_at: Arc::new(Mutex::new((desired > 0).then(Instant::now))),
            provider_probes: Arc::default(),
            thaws: Arc::default(),
            replica: ([127, 0, 0, 1], 0).into(),
            provider: ([127, 0, 0, 1], 0).into(),
        };
        cold.replica = serve(Router::new().fallback(replica).with_state(cold.clone())).await;
        cold.provider = serve(
            Router::new()
                .route("/system/endpoints/{name}", get(endpoints))
                .route("/system/function/{name}", get(function))
                .route("/system/scale-function/{name}", post(scale))
                .with_state(cold.clone()),
        )
        .await;
        cold
    }

    /// `http://<provider>`.
    pub fn provider_url(&self) -> String {
        format!("http://{}", self.provider)
    }

    /// Scale requests so far.
    pub fn scale_requests(&self) -> Vec<u64> {
        self.scaled_to.lock().unwrap().clone()
    }

    fn replica_ready(&self) -> bool {
        let started = *self.started_at.lock().unwrap();
        match (started, self.start_time) {
            (Some(at), Some(after)) => at.elapsed() >= after,
            _ => false,
        }
    }
}

async fn endpoints(
    State(cold): State<Cold>,
    Path(name): Path<String>,
) -> Result<axum::Json<FunctionEndpoints>, StatusCode> {
    if name != COLD {
        return Err(StatusCode::NOT_FOUND);
    }
    cold.lookups.fetch_add(1, Ordering::SeqCst);
    let desired = cold.desired.load(Ordering::SeqCst);
    let running = cold.started_at.lock().unwrap().is_some() && desired > 0;
    let ready = cold.provider_probes.load(Ordering::SeqCst) && cold.replica_ready();
    Ok(axum::Json(FunctionEndpoints {
        name,
        namespace: "openfaas-fn".into(),
        replicas: desired,
        endpoints: running
            .then(|| Endpoint {
                id: "r1".into(),
                address: cold.replica.to_string(),
                ready,
            })
            .into_iter()
            .collect(),
        probe: Default::default(),
    }))
}

async fn function(
    State(cold): State<Cold>,
    Path(name): Path<String>,
) -> Result<axum::Json<FunctionStatus>, StatusCode> {
    if name != COLD {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(axum::Json(FunctionStatus {
        name,
        replicas: cold.desired.load(Ordering::SeqCst),
        labels: [(SCALE_MIN.to_string(), "2".to_string())].into(),
        ..FunctionStatus::default()
    }))
}

/// Ferry's conditional scale (`fromZero`), as provider-docker answers it.
async fn scale(State(cold): State<Cold>, Path(name): Path<String>, body: Bytes) -> Response {
    if name != COLD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let req: ScaleServiceRequest = serde_json::from_slice(&body).unwrap();
    assert_eq!(req.service_name, COLD);
    assert_eq!(req.namespace, "openfaas-fn");
    assert!(req.from_zero, "a gateway only scales from zero");
    if cold.desired.load(Ordering::SeqCst) > 0 {
        return StatusCode::ACCEPTED.into_response();
    }
    // Starting a container takes a moment; max(com.openfaas.scale.min = 2, asked).
    tokio::time::sleep(Duration::from_millis(30)).await;
    let replicas = req.replicas.max(2);
    cold.scaled_to.lock().unwrap().push(replicas);
    cold.desired.store(replicas, Ordering::SeqCst);
    cold.started_at
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    if !cold.thaws.load(Ordering::SeqCst) {
        return (StatusCode::ACCEPTED, [(Wake::HEADER, "new")]).into_response();
    }
    let thawed = FunctionEndpoints {
        name,
        namespace: "openfaas-fn".into(),
        replicas,
        endpoints: vec![Endpoint {
            id: "r1".into(),
            address: cold.replica.to_string(),
            ready: false,
        }],
        probe: Default::default(),
    };
    (
        StatusCode::ACCEPTED,
        [(Wake::HEADER, "frozen")],
        axum::Json(thawed),
    )
        .into_response()
}

/// `/_/health` (the default readiness probe): 503 until the replica is ready; anything else:
/// `"cold <method> <body>"`.
async fn replica(
    State(cold): State<Cold>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    if uri.path() == ferry_proto::routes::WATCHDOG_HEALTH {
        return if cold.replica_ready() {
            (StatusCode::OK, "OK".into())
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "starting".into())
        };
    }
    cold.calls.fetch_add(1, Ordering::SeqCst);
    if !cold.replica_ready() {
        // A call sent before the replica was ready.
        return (StatusCode::BAD_GATEWAY, "called before ready".into());
    }
    (
        StatusCode::OK,
        format!("cold {method} {}", String::from_utf8_lossy(&body)),
    )
}
