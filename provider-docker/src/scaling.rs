//! A function's scaling labels, read into a [`ScalePolicy`] with OpenFaaS's defaults.
//!
//! | label | default | meaning |
//! |---|---|---|
//! | `com.openfaas.scale.min` | `1` | replicas a new function starts with; autoscaling's floor |
//! | `com.openfaas.scale.max` | `20` | autoscaling's ceiling, and the cap of a manual scale |
//! | `com.openfaas.scale.target` | `50` | load per replica |
//! | `com.openfaas.scale.type` | `rps` | `rps`, `inflight` (alias `capacity`) or `queue` |
//! | `com.openfaas.scale.down.window` | `scale_down_window` | stabilisation window of scaling down |
//! | `com.openfaas.scale.zero` | `false` | scale to zero when idle |
//! | `com.openfaas.scale.zero-duration` | `15m` | how long idle before going to zero |
//!
//! A function is autoscaled when any of `target`, `type` or `max` is set; the others keep the
//! replicas they are given. An invalid value is named in a warning (once per function and
//! value) and the default is used.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use ferry_proto::{FunctionDeployment, FunctionRef, labels};

/// Default `com.openfaas.scale.max` of an autoscaled function.
pub const DEFAULT_MAX: u64 = 20;
/// Default `com.openfaas.scale.target`.
pub const DEFAULT_TARGET: f64 = 50.0;
/// Default `com.openfaas.scale.zero-duration`.
pub const DEFAULT_ZERO_DURATION: Duration = Duration::from_secs(15 * 60);

/// What load means for an autoscaled function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadType {
    /// Completed requests per second, summed over the replicas.
    Rps,
    /// Requests in flight, summed over the replicas.
    Inflight,
    /// The function's calls waiting in JetStream.
    Queue,
}

/// The scaling settings of one function.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePolicy {
    /// Whether the autoscaler sets its replicas (`target`, `type` or `max` is set).
    pub autoscale: bool,
    /// `com.openfaas.scale.min`.
    pub min: u64,
    /// `com.openfaas.scale.max`; unbounded for a function that is not autoscaled.
    pub max: u64,
    /// `com.openfaas.scale.target`: load per replica, > 0.
    pub target: f64,
    /// `com.openfaas.scale.type`.
    pub load: LoadType,
    /// `com.openfaas.scale.down.window`, if set.
    pub down_window: Option<Duration>,
    /// `com.openfaas.scale.zero`.
    pub zero: bool,
    /// `com.openfaas.scale.zero-duration`.
    pub zero_duration: Duration,
}

impl ScalePolicy {
    /// Reads the labels of `d`, warning once about each invalid value.
    pub fn of(f: &FunctionRef, d: &FunctionDeployment) -> ScalePolicy {
        let read = |key: &str, expected: &str, parse: &dyn Fn(&str) -> Option<()>| {
            let value = d.labels.get(key)?;
            if parse(value.trim()).is_some() {
                return Some(value.trim().to_string());
            }
            warn_once(f, key, value, expected);
            None
        };
        let number = |key: &str, least: u64| {
            let v = read(key, &format!("a whole number, at least {least}"), &|v| {
                v.parse::<u64>().ok().filter(|n| *n >= least).map(|_| ())
            })?;
            v.parse::<u64>().ok()
        };
        let duration = |key: &str| {
            let v = read(key, "a duration such as 30s or 15m", &|v| {
                ferry_proto::duration::parse(v).ok().map(|_| ())
            })?;
            ferry_proto::duration::parse(&v).ok()
        };
        let min_label = number(labels::SCALE_MIN, 0);
        let max_label = number(labels::SCALE_MAX, 1);
        let target = read(labels::SCALE_TARGET, "a number above 0", &|v| {
            v.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0)
                .map(|_| ())
        })
        .and_then(|v| v.parse().ok());
        let load = read(labels::SCALE_TYPE, "rps, inflight or queue", &|v| {
            parse_type(v).map(|_| ())
        })
        .and_then(|v| parse_type(&v));
        let zero = read(labels::SCALE_ZERO, "true or false", &|v| {
            parse_bool(v).map(|_| ())
        })
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
        let autoscale = [labels::SCALE_TARGET, labels::SCALE_TYPE, labels::SCALE_MAX]
            .iter()
            .any(|k| d.labels.contains_key(*k));
        let mut min = min_label.unwrap_or(1);
        let max = match (autoscale, max_label) {
            (_, Some(max)) => max,
            (true, None) => DEFAULT_MAX,
            (false, None) => u64::MAX,
        };
        if min > max {
            warn_once(
                f,
                labels::SCALE_MIN,
                &min.to_string(),
                "at most com.openfaas.scale.max",
            );
            min = max;
        }
        ScalePolicy {
            autoscale,
            min,
            max,
            target: target.unwrap_or(DEFAULT_TARGET),
            load: load.unwrap_or(LoadType::Rps),
            down_window: duration(labels::SCALE_DOWN_WINDOW),
            zero,
            zero_duration: duration(labels::SCALE_ZERO_DURATION)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_ZERO_DURATION),
        }
    }

    /// Replicas a new function starts with: `min`.
    pub fn initial(&self) -> u64 {
        self.min
    }

    /// A manual scale (`POST /system/scale-function`) within bounds: `[min, max]` for an
    /// autoscaled function, `[0, max]` with scale to zero, and as asked otherwise.
    pub fn clamp_manual(&self, replicas: u64) -> u64 {
        let floor = if self.zero || !self.autoscale {
            0
        } else {
            self.min
        };
        replicas.clamp(floor, self.max)
    }

    /// An autoscaling recommendation within `[min, max]`.
    pub fn clamp_auto(&self, replicas: u64) -> u64 {
        replicas.clamp(self.min, self.max)
    }
}

fn parse_type(v: &str) -> Option<LoadType> {
    match v.to_ascii_lowercase().as_str() {
        "rps" => Some(LoadType::Rps),
        "inflight" | "capacity" => Some(LoadType::Inflight),
        "queue" => Some(LoadType::Queue),
        _ => None,
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Logs a warning once per function, label and value.
pub(crate) fn warn_once(f: &FunctionRef, label: &str, value: &str, expected: &str) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let key = format!("{f}\n{label}\n{value}");
    if WARNED.lock().expect("warned set poisoned").insert(key) {
        tracing::warn!(function = %f, label, value, expected, "ignoring invalid scaling label; using the default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> ScalePolicy {
        let mut d = FunctionDeployment {
            service: "f".into(),
            image: "i".into(),
            ..Default::default()
        };
        for (k, v) in pairs {
            d.labels.insert(k.to_string(), v.to_string());
        }
        ScalePolicy::of(&d.validate().unwrap(), &d)
    }

    #[test]
    fn defaults_and_opting_in() {
        let p = policy(&[]);
        assert!(!p.autoscale && !p.zero);
        assert_eq!((p.min, p.max, p.initial()), (1, u64::MAX, 1));
        assert_eq!(p.clamp_manual(0), 0, "not autoscaled: as asked");
        assert_eq!(p.clamp_manual(50), 50);
        for key in [labels::SCALE_TARGET, labels::SCALE_TYPE, labels::SCALE_MAX] {
            let p = policy(&[(key, "4")]);
            assert!(p.autoscale, "{key}");
        }
        let p = policy(&[(labels::SCALE_TYPE, "inflight")]);
        assert_eq!((p.min, p.max, p.target), (1, DEFAULT_MAX, DEFAULT_TARGET));
        assert_eq!(p.load, LoadType::Inflight);
        assert_eq!(p.zero_duration, DEFAULT_ZERO_DURATION);
        assert_eq!(
            policy(&[(labels::SCALE_TYPE, "Capacity")]).load,
            LoadType::Inflight
        );
    }

    #[test]
    fn manual_scale_is_clamped_for_autoscaled_functions() {
        let p = policy(&[
            (labels::SCALE_MIN, "2"),
            (labels::SCALE_MAX, "4"),
            (labels::SCALE_TARGET, "2.5"),
            (labels::SCALE_TYPE, "queue"),
            (labels::SCALE_DOWN_WINDOW, "5s"),
        ]);
        assert_eq!(
            (p.min, p.max, p.target, p.load),
            (2, 4, 2.5, LoadType::Queue)
        );
        assert_eq!(p.down_window, Some(Duration::from_secs(5)));
        assert_eq!((p.clamp_manual(0), p.clamp_manual(9)), (2, 4));
        assert_eq!((p.clamp_auto(0), p.clamp_auto(3)), (2, 3));
        let z = policy(&[
            (labels::SCALE_MAX, "4"),
            (labels::SCALE_ZERO, "true"),
            (labels::SCALE_ZERO_DURATION, "3s"),
        ]);
        assert!(z.zero);
        assert_eq!(z.zero_duration, Duration::from_secs(3));
        assert_eq!((z.clamp_manual(0), z.clamp_manual(9)), (0, 4));
        assert_eq!(
            z.clamp_auto(0),
            1,
            "autoscaling itself stays at min or above"
        );
    }

    #[test]
    fn invalid_values_fall_back_to_defaults() {
        let p = policy(&[
            (labels::SCALE_MIN, "x"),
            (labels::SCALE_MAX, "0"),
            (labels::SCALE_TARGET, "-1"),
            (labels::SCALE_TYPE, "cpu"),
            (labels::SCALE_ZERO, "perhaps"),
            (labels::SCALE_ZERO_DURATION, "soon"),
        ]);
        assert!(p.autoscale && !p.zero);
        assert_eq!((p.min, p.max, p.target), (1, DEFAULT_MAX, DEFAULT_TARGET));
        assert_eq!(p.load, LoadType::Rps);
        assert_eq!(p.zero_duration, DEFAULT_ZERO_DURATION);
        let p = policy(&[(labels::SCALE_MIN, "5"), (labels::SCALE_MAX, "3")]);
        assert_eq!((p.min, p.max), (3, 3), "min above max: max wins");
    }
}
