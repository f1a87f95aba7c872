//! The autoscaling loop: every `autoscale_interval`, for each function that autoscales (any
//! of `com.openfaas.scale.target`, `.type`, `.max`) or scales to zero
//! (`com.openfaas.scale.zero=true`), read its load and act on the decision of
//! [`crate::recommend`].
//!
//! - Load comes from the watchdog metrics of the function's ready replicas of the current
//!   generation ([`crate::replica_metrics`]), and for `queue` functions from JetStream: the
//!   messages of stream `ferry-calls` on `ferry.calls.*.<name>.<namespace>` (stream info
//!   with a subjects filter). Without `nats_url`, `queue` functions are not autoscaled (a
//!   warning says so once). Replicas are scraped in parallel, each with `probe_timeout`.
//! - A decision is applied through [`Rescale`] (the provider's `set_replicas`), the path of
//!   `POST /system/scale-function`, under the function's lock, in a task of its own so that
//!   creating containers for one function does not hold up the next round of the others. A
//!   function busy with another operation (its lock taken, e.g. by that task), or changed
//!   since it was measured, is left for the next round.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind};
use ferry_proto::FunctionRef;
use ferry_proto::jetstream::{CALLS_STREAM, function_calls_filter};
use futures_util::TryStreamExt;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::docker::Replica;
use crate::error::ProviderError;
use crate::parts::Parts;
use crate::recommend::{Decision, FunctionLoad, Observation};
use crate::replica_metrics::Scraper;
use crate::scaling::{LoadType, ScalePolicy};
use crate::store::Desired;

/// Longest wait for JetStream's count of a function's pending calls.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a decision is applied: the provider's `set_replicas` (the path of
/// `POST /system/scale-function`), called with the function's lock held.
pub trait Rescale: Send + Sync + 'static {
    /// Sets the desired replicas of `f` (now `want`) to `replicas` and reconciles; `cause`
    /// is for the log, `decided` starts a cold start's clock.
    fn rescale(
        self: &Arc<Self>,
        f: &FunctionRef,
        want: Desired,
        replicas: u64,
        cause: &'static str,
        decided: Instant,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// Autoscaling state shared by the loop and the scale API.
#[derive(Debug)]
pub struct Autoscaler {
    loads: Mutex<HashMap<FunctionRef, FunctionLoad>>,
    scraper: Scraper,
    jetstream: Option<jetstream::Context>,
    warned: Mutex<BTreeSet<String>>,
    /// Scale operations under way; waited for at shutdown.
    tasks: TaskTracker,
}

impl Autoscaler {
    /// State for a provider configured by `config`, counting queues in `jetstream`.
    pub fn new(config: &Config, jetstream: Option<jetstream::Context>) -> Autoscaler {
        Autoscaler {
            loads: Mutex::default(),
            scraper: Scraper::new(config.probe_timeout),
            jetstream,
            warned: Mutex::default(),
            tasks: TaskTracker::new(),
        }
    }

    /// Waits for the scale operations under way (at shutdown, once the loop has stopped).
    pub async fn finish(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Notes a scale made through the API: it holds for a stabilisation window, and the idle
    /// clock starts again.
    pub fn manual(&self, f: &FunctionRef, replicas: u64) {
        let now = Instant::now();
        self.loads
            .lock()
            .expect("autoscaler state poisoned")
            .entry(f.clone())
            .or_insert_with(|| FunctionLoad::new(now, replicas))
            .manual(now, replicas);
    }

    /// True the first time `key` is seen (for warnings given once).
    fn first_time(&self, key: String) -> bool {
        self.warned
            .lock()
            .expect("autoscaler warnings poisoned")
            .insert(key)
    }
}

impl Autoscaler {
    /// One round over every function that autoscales or scales to zero.
    pub async fn round<P: Rescale>(&self, parts: &Arc<Parts>, provider: &Arc<P>) {
        let functions: Vec<(FunctionRef, Desired, ScalePolicy)> = parts
            .store
            .list(None)
            .into_iter()
            .map(|(f, want)| {
                let policy = ScalePolicy::of(&f, &want.deployment);
                (f, want, policy)
            })
            .filter(|(_, _, p)| p.autoscale || p.zero)
            .collect();
        self.loads
            .lock()
            .expect("autoscaler state poisoned")
            .retain(|f, _| functions.iter().any(|(g, _, _)| g == f));
        if functions.is_empty() {
            return;
        }
        let mut live = match parts.live(None).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "autoscaling: cannot list containers");
                return;
            }
        };
        let rounds = functions.into_iter().map(|(f, want, policy)| {
            let replicas = live.remove(&f).unwrap_or_default();
            self.one(parts, provider, f, want, policy, replicas)
        });
        futures_util::future::join_all(rounds).await;
    }

    async fn one<P: Rescale>(
        &self,
        parts: &Arc<Parts>,
        provider: &Arc<P>,
        f: FunctionRef,
        want: Desired,
        policy: ScalePolicy,
        replicas: Vec<Replica>,
    ) {
        let obs = self.observe(parts, &f, &want, &policy, replicas).await;
        let window = policy.down_window.unwrap_or(parts.config.scale_down_window);
        let now = Instant::now();
        let decision = self
            .loads
            .lock()
            .expect("autoscaler state poisoned")
            .entry(f.clone())
            .or_insert_with(|| FunctionLoad::new(now, want.replicas))
            .observe(&policy, want.replicas, &obs, window, now);
        tracing::debug!(function = %f, desired = want.replicas, ?decision,
            readings = ?obs.replicas, unready = obs.unready, queue = ?obs.queue, "autoscaling round");
        let (replicas, cause) = match decision {
            Decision::Hold => return,
            Decision::Scale(n) => (n, "autoscale"),
            Decision::Zero => (0, "idle"),
        };
        if replicas == want.replicas {
            return;
        }
        let Ok(guard) = parts.store.lock_for(&f).try_lock_owned() else {
            return;
        };
        let Some(current) = parts.store.get(&f).filter(|current| {
            current.replicas == want.replicas && current.generation == want.generation
        }) else {
            return;
        };
        let provider = Arc::clone(provider);
        self.tasks.spawn(async move {
            if let Err(e) = provider.rescale(&f, current, replicas, cause, now).await {
                tracing::warn!(function = %f, replicas, error = %e, "autoscaling failed");
            }
            drop(guard);
        });
    }

    /// Reads the load of `f`: every ready replica's metrics, and its backlog if it scales on
    /// its queue.
    async fn observe(
        &self,
        parts: &Parts,
        f: &FunctionRef,
        want: &Desired,
        policy: &ScalePolicy,
        replicas: Vec<Replica>,
    ) -> Observation {
        let current: Vec<Replica> = replicas
            .into_iter()
            .filter(|r| r.running && r.generation == want.generation)
            .collect();
        // Unready replicas get no traffic: they carry no load and are not asked.
        let ready = parts.prober.ready_all(&current).await;
        let unready = ready.iter().filter(|r| !**r).count();
        let reads = current
            .iter()
            .zip(ready)
            .filter(|(_, ready)| *ready)
            .map(|(r, _)| async move {
                let reading = match &r.metrics_address {
                    Some(address) => self.scraper.read(address).await,
                    None => Err("its metrics port is not published".to_string()),
                };
                if let Err(e) = &reading {
                    if self.first_time(format!("replica {}", r.id)) {
                        tracing::warn!(function = %f, container = %r.id, error = %e,
                            "cannot read a replica's metrics; until it answers, the function is not scaled down");
                    }
                }
                (r.id.clone(), reading.ok())
            });
        let replicas = futures_util::future::join_all(reads).await;
        let queue = if policy.autoscale && policy.load == LoadType::Queue {
            self.pending_calls(f).await
        } else {
            None
        };
        Observation {
            replicas,
            unready,
            queue,
        }
    }

    /// The function's calls waiting in JetStream (None: unknown).
    async fn pending_calls(&self, f: &FunctionRef) -> Option<u64> {
        let Some(js) = &self.jetstream else {
            if self.first_time(format!("queue {f}")) {
                tracing::warn!(function = %f, "com.openfaas.scale.type=queue needs nats_url; not autoscaling this function");
            }
            return None;
        };
        let count = async {
            let stream = match js.get_stream(CALLS_STREAM).await {
                Ok(stream) => stream,
                Err(e) => {
                    return match e.kind() {
                        GetStreamErrorKind::JetStream(e)
                            if e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                        {
                            Ok(0)
                        }
                        _ => Err(e.to_string()),
                    };
                }
            };
            let mut subjects = stream
                .info_with_subjects(function_calls_filter(f))
                .await
                .map_err(|e| e.to_string())?;
            let mut total = 0u64;
            while let Some((_, n)) = subjects.try_next().await.map_err(|e| e.to_string())? {
                total += n as u64;
            }
            Ok::<u64, String>(total)
        };
        match tokio::time::timeout(QUEUE_TIMEOUT, count).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::debug!(function = %f, error = %e, "cannot count pending calls");
                None
            }
            Err(_) => {
                tracing::debug!(function = %f, "counting pending calls timed out");
                None
            }
        }
    }
}
