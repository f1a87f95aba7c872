//! A function's scaling labels, read into a [`ScalePolicy`] with OpenFaaS's defaults.
//!
//! | label | default | meaning |
//! |---|---|---|
//! | `com.openfaas.scale.min` | `1` | replicas a new function starts with; autoscaling's floor |
//! | `com.openfaas.scale.max` | `5` (alert rule), `20` (target rule) | autoscaling's ceiling, and the cap of a manual scale when set |
//! | `com.openfaas.scale.factor` | `10` | alert rule: percent of `max` added per step (1–100); `0` turns autoscaling off |
//! | `com.openfaas.scale.target` | `50` | target rule: load per replica |
//! | `com.openfaas.scale.type` | `rps` | target rule: `rps`, `inflight` (alias `capacity`) or `queue` |
//! | `com.openfaas.scale.down.window` | `scale_down_window` | target rule: stabilisation window of scaling down |
//! | `com.openfaas.scale.zero` | `false` | scale to zero when idle |
//! | `com.openfaas.scale.zero-duration` | `15m` | how long idle before going to zero |
//! | `com.ferry.scale.zero.tiers` | `freeze,stop` | at zero: frozen first, then stopped (`freeze`: frozen only; `stop`: stopped at once), see [`crate::freeze`] |
//! | `com.ferry.scale.zero.stop-after` | `frozen_stop_after` | how long frozen before stopped |
//!
//! Two rules, as the two OpenFaaS editions have them:
//!
//! - **Alert rule** (OpenFaaS CE's, for every function without `type` or `target`, so for one
//!   with no scaling labels at all): when the function serves more than 5 requests per second
//!   for 5 seconds (the CE alert `APIHighInvocationRate`), it gains `ceil(max × factor / 100)`
//!   replicas, and again every 30 seconds while that lasts, up to `max`; once the rate has
//!   stayed at or below 5 /s for 10 seconds, it goes back to `min`. Replicas set by hand are
//!   left alone until the rule fires. Unlike CE, `max` is not capped at 5.
//! - **Target rule** (OpenFaaS Pro's, when `type` or `target` is set): `ceil(load / target)`
//!   replicas within `[min, max]` (see [`crate::recommend`]).
//!
//! `min == max`, or `factor=0` under the alert rule, pins the replicas. An invalid value is
//! named in a warning (once per function and value) and the default is used.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use ferry_proto::{FunctionDeployment, FunctionRef, labels};

/// Default `com.openfaas.scale.max` under the target rule.
pub const DEFAULT_MAX: u64 = 20;
/// Default `com.openfaas.scale.max` under the alert rule (OpenFaaS CE's).
pub const DEFAULT_ALERT_MAX: u64 = 5;
/// Default `com.openfaas.scale.factor` (OpenFaaS CE's).
pub const DEFAULT_FACTOR: u64 = 10;
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

/// How an autoscaled function's replicas are decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// OpenFaaS CE's alert: `step` more replicas while above 5 requests per second, `min`
    /// once it resolves.
    Alert {
        /// Replicas added per step: `ceil(max × factor / 100)`.
        step: u64,
    },
    /// OpenFaaS Pro's target: `ceil(load / target)`.
    Target,
}

/// The scaling settings of one function.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePolicy {
    /// Whether the autoscaler sets its replicas (not pinned by `min == max` or `factor=0`).
    pub autoscale: bool,
    /// How: the alert rule or the target rule.
    pub rule: Rule,
    /// `com.openfaas.scale.min`.
    pub min: u64,
    /// `com.openfaas.scale.max`, or the rule's default: autoscaling's ceiling.
    pub max: u64,
    /// The cap of a manual scale: `com.openfaas.scale.max` under the target rule or when
    /// set, else unbounded.
    pub manual_max: u64,
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
    /// `com.ferry.scale.zero.tiers`: what happens to the replica kept at zero.
    pub tiers: Tiers,
    /// `com.ferry.scale.zero.stop-after`, if set.
    pub stop_after: Option<Duration>,
}

/// The idle tiers a function at zero goes through (`com.ferry.scale.zero.tiers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiers {
    /// The replica kept at zero is frozen (paused) first.
    pub freeze: bool,
    /// It is stopped (after `stop-after` when frozen first).
    pub stop: bool,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers {
            freeze: true,
            stop: true,
        }
    }
}

impl ScalePolicy {
    /// Reads the labels of `d`, warning once about each invalid value.
    pub fn of(f_ref: &FunctionRef, d: &FunctionDeployment) -> ScalePolicy {
        let labels_of = ScaleLabels { f: f_ref, d };
        let min_label = labels_of.number(labels::SCALE_MIN, 0);
        let max_label = labels_of.number(labels::SCALE_MAX, 1);
        let target = labels_of.read(labels::SCALE_TARGET, "a number above 0", |v| {
            v.parse::<f64>().ok().filter(|t| t.is_finite() && *t > 0.0)
        });
        let load = labels_of.read(labels::SCALE_TYPE, "rps, inflight or queue", parse_type);
        let zero = labels_of
            .read(labels::SCALE_ZERO, "true or false", parse_bool)
            .unwrap_or(false);
        let factor = labels_of
            .number(labels::SCALE_FACTOR, 0)
            .filter(|f| {
                *f <= 100 || {
                    warn_once(f_ref, labels::SCALE_FACTOR, &f.to_string(), "0 to 100");
                    false
                }
            })
            .unwrap_or(DEFAULT_FACTOR);
        let targeted = [labels::SCALE_TARGET, labels::SCALE_TYPE]
            .iter()
            .any(|k| d.labels.contains_key(*k));
        let mut min = min_label.unwrap_or(1);
        let default_max = if targeted {
            DEFAULT_MAX
        } else {
            DEFAULT_ALERT_MAX.max(min)
        };
        let max = max_label.unwrap_or(default_max);
        if min > max {
            warn_once(
                f_ref,
                labels::SCALE_MIN,
                &min.to_string(),
                "at most com.openfaas.scale.max",
            );
            min = max;
        }
        let rule = if targeted {
            Rule::Target
        } else {
            Rule::Alert {
                step: (max.saturating_mul(factor)).div_ceil(100),
            }
        };
        ScalePolicy {
            autoscale: min < max && rule != Rule::Alert { step: 0 },
            rule,
            min,
            max,
            manual_max: max_label.unwrap_or(if targeted { max } else { u64::MAX }),
            target: target.unwrap_or(DEFAULT_TARGET),
            load: load.unwrap_or(LoadType::Rps),
            down_window: labels_of.duration(labels::SCALE_DOWN_WINDOW),
            zero,
            zero_duration: labels_of
                .duration(labels::SCALE_ZERO_DURATION)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_ZERO_DURATION),
            tiers: labels_of
                .read(
                    labels::SCALE_ZERO_TIERS,
                    "freeze,stop, freeze or stop",
                    parse_tiers,
                )
                .unwrap_or_default(),
            stop_after: labels_of
                .duration(labels::SCALE_ZERO_STOP_AFTER)
                .filter(|d| !d.is_zero()),
        }
    }

    /// Replicas a new function starts with: `min`.
    pub fn initial(&self) -> u64 {
        self.min
    }

    /// A manual scale (`POST /system/scale-function`) within bounds: `[min, max]` under the
    /// target rule, else `[0, max]` (`max` only when labelled).
    pub fn clamp_manual(&self, replicas: u64) -> u64 {
        let floor = if self.zero || !self.autoscale || self.rule != Rule::Target {
            0
        } else {
            self.min
        };
        replicas.clamp(floor, self.manual_max.max(floor))
    }

    /// An autoscaling recommendation within `[min, max]`.
    pub fn clamp_auto(&self, replicas: u64) -> u64 {
        replicas.clamp(self.min, self.max)
    }
}

/// The `com.openfaas.scale.*` labels of one function: a value that does not parse is
/// warned about (once) and read as absent.
struct ScaleLabels<'a> {
    f: &'a FunctionRef,
    d: &'a FunctionDeployment,
}

impl ScaleLabels<'_> {
    /// The label `key` parsed (trimmed) by `parse`; `expected` says what it should be.
    fn read<T>(&self, key: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let value = self.d.labels.get(key)?;
        let parsed = parse(value.trim());
        if parsed.is_none() {
            warn_once(self.f, key, value, expected);
        }
        parsed
    }

    /// A whole number, at least `least`.
    fn number(&self, key: &str, least: u64) -> Option<u64> {
        let expected = format!("a whole number, at least {least}");
        self.read(key, &expected, |v| {
            v.parse::<u64>().ok().filter(|n| *n >= least)
        })
    }

    /// A duration such as `30s`.
    fn duration(&self, key: &str) -> Option<Duration> {
        self.read(key, "a duration such as 30s or 15m", |v| {
            ferry_proto::duration::parse(v).ok()
        })
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

fn parse_tiers(v: &str) -> Option<Tiers> {
    let mut tiers = Tiers {
        freeze: false,
        stop: false,
    };
    for tier in v.split(',').map(str::trim) {
        match tier.to_ascii_lowercase().as_str() {
            "freeze" => tiers.freeze = true,
            "stop" => tiers.stop = true,
            _ => return None,
        }
    }
    Some(tiers)
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
        assert!(
            p.autoscale && !p.zero,
            "OpenFaaS CE's alert rule by default"
        );
        assert_eq!(p.rule, Rule::Alert { step: 1 });
        assert_eq!((p.min, p.max, p.initial()), (1, DEFAULT_ALERT_MAX, 1));
        assert_eq!(p.clamp_manual(0), 0, "manual: as asked");
        assert_eq!(p.clamp_manual(50), 50, "no max label: no cap");
        let p = policy(&[(labels::SCALE_MAX, "30"), (labels::SCALE_FACTOR, "20")]);
        assert_eq!((p.max, p.rule), (30, Rule::Alert { step: 6 }));
        assert_eq!(p.clamp_manual(50), 30);
        assert_eq!(policy(&[(labels::SCALE_MIN, "8")]).max, 8, "min above 5");
        for key in [labels::SCALE_TARGET, labels::SCALE_TYPE] {
            let p = policy(&[(key, "4")]);
            assert_eq!(p.rule, Rule::Target, "{key}");
        }
        let p = policy(&[(labels::SCALE_TYPE, "inflight")]);
        assert_eq!((p.min, p.max, p.target), (1, DEFAULT_MAX, DEFAULT_TARGET));
        assert_eq!(p.load, LoadType::Inflight);
        assert_eq!(p.zero_duration, DEFAULT_ZERO_DURATION);
        assert_eq!((p.tiers, p.stop_after), (Tiers::default(), None));
        let t = |v: &str| policy(&[(labels::SCALE_ZERO_TIERS, v)]).tiers;
        let (freeze, stop) = (t("freeze"), t(" Stop "));
        assert!(freeze.freeze && !freeze.stop && !stop.freeze && stop.stop);
        assert_eq!(t("stop,freeze"), Tiers::default());
        assert_eq!(t("pause"), Tiers::default(), "invalid: the default");
        assert_eq!(
            policy(&[(labels::SCALE_ZERO_STOP_AFTER, "2m")]).stop_after,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            policy(&[(labels::SCALE_TYPE, "Capacity")]).load,
            LoadType::Inflight
        );
        assert!(!policy(&[(labels::SCALE_FACTOR, "0")]).autoscale);
        assert_eq!(
            policy(&[(labels::SCALE_FACTOR, "101")]).rule,
            Rule::Alert { step: 1 },
            "out of range: the default"
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
        assert_eq!(p.rule, Rule::Target);
        assert_eq!((p.min, p.max, p.target), (1, DEFAULT_MAX, DEFAULT_TARGET));
        assert_eq!(p.load, LoadType::Rps);
        assert_eq!(p.zero_duration, DEFAULT_ZERO_DURATION);
        let p = policy(&[(labels::SCALE_MIN, "5"), (labels::SCALE_MAX, "3")]);
        assert_eq!((p.min, p.max), (3, 3), "min above max: max wins");
    }
}
