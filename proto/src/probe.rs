//! How a replica's readiness is checked, from the function's annotations, as OpenFaaS reads
//! them.
//!
//! | annotation | default | meaning |
//! |---|---|---|
//! | `com.openfaas.ready.http.path` | – | path of the readiness probe |
//! | `com.openfaas.health.http.path` | `/_/health` | path of the health probe; the readiness probe's too when no ready path is set |
//! | `com.openfaas.ready.http.initialDelay` | – | time after a replica is created before it may count as ready |
//! | `com.openfaas.health.http.initialDelay` | `0s` | the same, when no ready delay is set |
//!
//! The default path is OpenFaaS's: `GET /_/health`, which every watchdog serves (the classic
//! watchdog from its lock file, of-watchdog and ferry's watchdog themselves). ferry's watchdog
//! also serves `/_/ready` (busy at `max_inflight`, the function's own `ready_path`); a function
//! that wants it says `com.openfaas.ready.http.path: /_/ready`. A path that is not a plain
//! absolute path (`/` and then no spaces, `?` allowed) is ignored with the default kept, and so
//! is a delay that is not a duration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::routes::WATCHDOG_HEALTH;

/// `com.openfaas.ready.http.path`.
pub const READY_PATH: &str = "com.openfaas.ready.http.path";
/// `com.openfaas.health.http.path`.
pub const HEALTH_PATH: &str = "com.openfaas.health.http.path";
/// `com.openfaas.ready.http.initialDelay`.
pub const READY_INITIAL_DELAY: &str = "com.openfaas.ready.http.initialDelay";
/// `com.openfaas.health.http.initialDelay`.
pub const HEALTH_INITIAL_DELAY: &str = "com.openfaas.health.http.initialDelay";

/// The readiness probe of a function's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessProbe {
    /// Path of `GET` on the watchdog's port; 200 (or 429: busy) means ready.
    pub path: String,
    /// Time after a replica's creation before it may count as ready, in milliseconds.
    #[serde(default)]
    pub initial_delay_ms: u64,
}

impl Default for ReadinessProbe {
    fn default() -> Self {
        ReadinessProbe {
            path: WATCHDOG_HEALTH.to_string(),
            initial_delay_ms: 0,
        }
    }
}

impl ReadinessProbe {
    /// The probe that `annotations` ask for (see the module docs).
    pub fn of<'a>(annotation: impl Fn(&str) -> Option<&'a str>) -> ReadinessProbe {
        let path = [READY_PATH, HEALTH_PATH]
            .into_iter()
            .filter_map(&annotation)
            .map(str::trim)
            .find(|p| valid_path(p))
            .unwrap_or(WATCHDOG_HEALTH)
            .to_string();
        let initial_delay_ms = [READY_INITIAL_DELAY, HEALTH_INITIAL_DELAY]
            .into_iter()
            .filter_map(&annotation)
            .find_map(|d| crate::duration::parse(d).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        ReadinessProbe {
            path,
            initial_delay_ms,
        }
    }

    /// [`ReadinessProbe::of`] a map of annotations.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> ReadinessProbe {
        ReadinessProbe::of(|key| annotations.get(key).map(String::as_str))
    }

    /// The initial delay.
    pub fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.initial_delay_ms)
    }
}

/// An absolute path with an optional query: `/`, then printable ASCII without spaces.
fn valid_path(p: &str) -> bool {
    p.starts_with('/') && p.len() <= 1024 && p.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(pairs: &[(&str, &str)]) -> ReadinessProbe {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ReadinessProbe::from_annotations(&map)
    }

    #[test]
    fn defaults_to_the_health_path_without_delay() {
        assert_eq!(probe(&[]), ReadinessProbe::default());
        assert_eq!(probe(&[]).path, "/_/health");
    }

    #[test]
    fn ready_path_wins_over_health_path_and_bad_values_are_ignored() {
        assert_eq!(probe(&[(HEALTH_PATH, "/healthz")]).path, "/healthz");
        let both = probe(&[(HEALTH_PATH, "/healthz"), (READY_PATH, "/_/ready")]);
        assert_eq!(both.path, "/_/ready");
        assert_eq!(probe(&[(READY_PATH, "no slash")]).path, "/_/health");
        let fallback = probe(&[(READY_PATH, "/a b"), (HEALTH_PATH, "/h?x=1")]);
        assert_eq!(fallback.path, "/h?x=1");
    }

    #[test]
    fn initial_delay_from_either_annotation() {
        assert_eq!(
            probe(&[(HEALTH_INITIAL_DELAY, "2s")]).initial_delay(),
            Duration::from_secs(2)
        );
        let both = probe(&[(HEALTH_INITIAL_DELAY, "2s"), (READY_INITIAL_DELAY, "500ms")]);
        assert_eq!(both.initial_delay(), Duration::from_millis(500));
        assert_eq!(probe(&[(READY_INITIAL_DELAY, "soon")]).initial_delay_ms, 0);
        assert_eq!(
            probe(&[(HEALTH_INITIAL_DELAY, "30")]).initial_delay_ms,
            30_000
        );
    }

    #[test]
    fn serialises_in_camel_case() {
        let json = serde_json::to_value(probe(&[(READY_INITIAL_DELAY, "1s")])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"path": "/_/health", "initialDelayMs": 1000})
        );
    }
}
