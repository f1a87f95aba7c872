//! Resource usage of function replicas, reported as `usage` (`cpu`, `totalMemoryBytes`) on
//! `GET /system/functions` and `GET /system/function/{name}`, as faasd and faas-netes do; the
//! same for both providers (a replica is a container: provider-docker's own, or a Swarm
//! task's on this node).
//!
//! A background task samples the Docker stats of every running or frozen (paused) replica every
//! [`SAMPLE_INTERVAL`] (one-shot reads, a few at a time), so answering the API never waits
//! for the engine. Memory is what `docker stats` shows: the cgroup's usage less its inactive
//! page cache. CPU is in millicores over the last interval (1000 = one core busy), so it needs
//! two samples of a replica. A function with no sampled replica has no `usage`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use ferry_proto::FunctionUsage;
use futures_util::{StreamExt as _, TryStreamExt as _};

/// How often running replicas are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Replicas read at once.
const CONCURRENT_READS: usize = 8;

/// One replica's last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    memory_bytes: u64,
    /// Total CPU time used, nanoseconds.
    cpu_ns: u64,
    at: Instant,
    /// Over the interval since the previous sample.
    millicores: Option<f64>,
}

/// The last sample of each running replica, by container id.
#[derive(Debug, Default)]
pub struct Usage {
    samples: Mutex<HashMap<String, Sample>>,
}

impl Usage {
    /// Samples `running` (container ids) and forgets every other replica.
    pub async fn refresh(&self, docker: &Docker, running: Vec<String>) {
        let read: Vec<(String, ContainerStatsResponse)> = futures_util::stream::iter(running)
            .map(|id| async move {
                let options = StatsOptionsBuilder::new()
                    .stream(false)
                    .one_shot(true)
                    .build();
                let stats = docker.stats(&id, Some(options)).try_next().await;
                match stats {
                    Ok(Some(stats)) => Some((id, stats)),
                    Ok(None) => None,
                    Err(error) => {
                        tracing::debug!(container = %id, %error, "no stats for the replica");
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let now = Instant::now();
        let mut samples = self.samples.lock().expect("usage samples poisoned");
        let mut next = HashMap::with_capacity(read.len());
        for (id, stats) in read {
            if let Some(sample) = sample(&stats, samples.get(&id), now) {
                next.insert(id, sample);
            }
        }
        *samples = next;
    }

    /// The usage of a function whose replicas are `ids`: the sum over its sampled replicas;
    /// `None` when none has been sampled.
    pub fn of<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Option<FunctionUsage> {
        let samples = self.samples.lock().expect("usage samples poisoned");
        let mut usage: Option<FunctionUsage> = None;
        for sample in ids.into_iter().filter_map(|id| samples.get(id)) {
            let u = usage.get_or_insert_with(FunctionUsage::default);
            u.total_memory_bytes += sample.memory_bytes as f64;
            u.cpu += sample.millicores.unwrap_or(0.0);
        }
        usage
    }
}

impl Usage {
    /// The last memory reading of the container `id`, bytes.
    pub fn memory_of(&self, id: &str) -> Option<u64> {
        let samples = self.samples.lock().expect("usage samples poisoned");
        samples.get(id).map(|s| s.memory_bytes)
    }
}

/// The sample `stats` gives, its CPU rate from `previous`; `None` for a container that is not
/// running (no memory figure).
fn sample(
    stats: &ContainerStatsResponse,
    previous: Option<&Sample>,
    at: Instant,
) -> Option<Sample> {
    let memory = stats.memory_stats.as_ref()?;
    let usage = memory.usage?;
    // cgroup v2 names it `inactive_file`, v1 `total_inactive_file`; `docker stats` subtracts it.
    let inactive = memory.stats.as_ref().and_then(|s| {
        s.get("inactive_file")
            .or_else(|| s.get("total_inactive_file"))
            .copied()
    });
    let cpu_ns = stats
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let millicores = previous.and_then(|p| {
        let wall = at.checked_duration_since(p.at)?.as_nanos() as f64;
        (wall > 0.0 && cpu_ns >= p.cpu_ns).then(|| (cpu_ns - p.cpu_ns) as f64 / wall * 1000.0)
    });
    Some(Sample {
        memory_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
        cpu_ns,
        at,
        millicores,
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    use super::*;

    fn stats(memory: u64, inactive: u64, cpu_ns: u64) -> ContainerStatsResponse {
        ContainerStatsResponse {
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(memory),
                stats: Some(HashMap::from([("inactive_file".to_string(), inactive)])),
                ..Default::default()
            }),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(cpu_ns),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn memory_leaves_out_the_inactive_cache_and_cpu_needs_two_samples() {
        let t0 = Instant::now();
        let first = sample(&stats(10_000_000, 2_000_000, 1_000_000_000), None, t0).unwrap();
        assert_eq!((first.memory_bytes, first.millicores), (8_000_000, None));
        // Half a core over two seconds: 1 s of CPU time.
        let t1 = t0 + Duration::from_secs(2);
        let second = sample(&stats(12_000_000, 0, 2_000_000_000), Some(&first), t1).unwrap();
        assert_eq!(second.memory_bytes, 12_000_000);
        assert!((second.millicores.unwrap() - 500.0).abs() < 1e-6);
        // A stopped container reports no memory.
        assert_eq!(sample(&ContainerStatsResponse::default(), None, t1), None);
    }

    #[test]
    fn a_function_sums_its_sampled_replicas() {
        let usage = Usage::default();
        let at = Instant::now();
        let s = |memory_bytes, millicores| Sample {
            memory_bytes,
            cpu_ns: 0,
            at,
            millicores,
        };
        usage.samples.lock().unwrap().extend([
            ("a".to_string(), s(100, Some(10.0))),
            ("b".to_string(), s(50, None)),
        ]);
        let u = usage.of(["a", "b", "unsampled"]).unwrap();
        assert_eq!((u.total_memory_bytes, u.cpu), (150.0, 10.0));
        assert_eq!(usage.of(["unsampled"]), None);
    }
}
