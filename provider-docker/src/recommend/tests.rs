//! The decision rules with a made-up clock.

use std::time::{Duration, Instant};

use ferry_proto::{FunctionDeployment, labels};

use super::*;

const WINDOW: Duration = Duration::from_secs(10);

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

fn inflight() -> ScalePolicy {
    policy(&[
        (labels::SCALE_MAX, "4"),
        (labels::SCALE_TARGET, "2"),
        (labels::SCALE_TYPE, "inflight"),
    ])
}

/// Replicas `a`, `b`, ... with (requests, in flight) readings.
fn obs(readings: &[(f64, f64)]) -> Observation {
    Observation {
        replicas: readings
            .iter()
            .enumerate()
            .map(|(i, (requests, in_flight))| {
                let reading = Reading {
                    requests: *requests,
                    in_flight: *in_flight,
                };
                (((b'a' + i as u8) as char).to_string(), Some(reading))
            })
            .collect(),
        unready: 0,
        queue: None,
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn inflight_scales_up_at_once_and_down_after_the_window() {
    let p = inflight();
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 1.0)]), WINDOW, t0),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 5.0)]), WINDOW, secs(t0, 2)),
        Decision::Scale(3)
    );
    // Never above max.
    let busy = obs(&[(9.0, 6.0), (0.0, 3.0), (0.0, 0.0)]);
    assert_eq!(
        l.observe(&p, 3, &busy, WINDOW, secs(t0, 4)),
        Decision::Scale(4)
    );
    // Load gone: held for the window, then the highest recommendation within it.
    let idle = obs(&[(20.0, 0.0), (5.0, 0.0), (0.0, 0.0), (0.0, 0.0)]);
    for s in [6, 8, 10, 12, 14] {
        assert_eq!(
            l.observe(&p, 4, &idle, WINDOW, secs(t0, s)),
            Decision::Hold,
            "{s}s"
        );
    }
    assert_eq!(
        l.observe(&p, 4, &idle, WINDOW, secs(t0, 16)),
        Decision::Scale(1)
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(20.0, 0.0)]), WINDOW, secs(t0, 18)),
        Decision::Hold
    );
}

#[test]
fn a_dip_does_not_flap() {
    let p = inflight();
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 4);
    let mut desired = 4;
    for s in 0..40 {
        // Load alternates between 8 (4 replicas) and 1 (1 replica) every round.
        let in_flight = if s % 2 == 0 { 8.0 } else { 1.0 };
        match l.observe(&p, desired, &obs(&[(0.0, in_flight)]), WINDOW, secs(t0, s)) {
            Decision::Scale(n) => desired = n,
            Decision::Hold => {}
            Decision::Zero => panic!("not a scale-to-zero function"),
        }
        assert_eq!(desired, 4, "at {s}s");
    }
}

#[test]
fn rps_is_the_counters_increase_over_time() {
    let p = policy(&[(labels::SCALE_MAX, "10"), (labels::SCALE_TARGET, "3")]);
    assert_eq!(p.load, LoadType::Rps);
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    // The first reading has no rate yet.
    assert_eq!(
        l.observe(&p, 1, &obs(&[(100.0, 0.0)]), WINDOW, t0),
        Decision::Hold
    );
    // +40 requests in 2 s = 20 rps → 7 replicas.
    assert_eq!(
        l.observe(&p, 1, &obs(&[(140.0, 0.0)]), WINDOW, secs(t0, 2)),
        Decision::Scale(7)
    );
    // A counter that went down was reset (a restarted replica): its value is the increase.
    let two = obs(&[(12.0, 0.0), (0.0, 0.0)]);
    assert_eq!(
        l.observe(&p, 7, &two, WINDOW, secs(t0, 4)),
        Decision::Hold,
        "b has no rate yet"
    );
    let two = obs(&[(40.0, 0.0), (60.0, 0.0)]);
    // (28 + 60) / 2 s = 44 rps → 15, capped at 10.
    assert_eq!(
        l.observe(&p, 7, &two, WINDOW, secs(t0, 6)),
        Decision::Scale(10)
    );
}

#[test]
fn unreadable_replicas_never_lower_the_count_nor_look_idle() {
    let p = policy(&[
        (labels::SCALE_MAX, "4"),
        (labels::SCALE_TARGET, "2"),
        (labels::SCALE_TYPE, "inflight"),
        (labels::SCALE_ZERO, "true"),
        (labels::SCALE_ZERO_DURATION, "3s"),
    ]);
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 3);
    let mut partial = obs(&[(0.0, 0.0), (0.0, 0.0)]);
    partial.replicas[1].1 = None;
    for s in 1..30 {
        assert_eq!(
            l.observe(&p, 3, &partial, Duration::ZERO, secs(t0, s)),
            Decision::Hold
        );
    }
    // A lower bound can still raise it.
    partial.replicas[0].1 = Some(Reading {
        requests: 0.0,
        in_flight: 7.0,
    });
    assert_eq!(
        l.observe(&p, 3, &partial, WINDOW, secs(t0, 31)),
        Decision::Scale(4)
    );
}

#[test]
fn idle_functions_go_to_zero_and_activity_restarts_the_clock() {
    let p = policy(&[
        (labels::SCALE_ZERO, "true"),
        (labels::SCALE_ZERO_DURATION, "3s"),
    ]);
    assert_eq!(p.rule, Rule::Alert { step: 1 }, "below the alert's rate");
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 0.0)]), WINDOW, t0),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 0.0)]), WINDOW, secs(t0, 2)),
        Decision::Hold
    );
    // One request at 2..4 s restarts the clock.
    assert_eq!(
        l.observe(&p, 1, &obs(&[(1.0, 0.0)]), WINDOW, secs(t0, 4)),
        Decision::Hold
    );
    // A long request in flight is activity too.
    assert_eq!(
        l.observe(&p, 1, &obs(&[(1.0, 1.0)]), WINDOW, secs(t0, 6)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(2.0, 0.0)]), WINDOW, secs(t0, 8)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(2.0, 0.0)]), WINDOW, secs(t0, 10)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(2.0, 0.0)]), WINDOW, secs(t0, 11)),
        Decision::Zero
    );
    // At zero it stays there: nothing to measure.
    assert_eq!(
        l.observe(&p, 0, &obs(&[]), WINDOW, secs(t0, 30)),
        Decision::Hold
    );
    // Back from zero (by a call through the gateway): the whole duration again, counted
    // from when the replica is up (a slow start is not idleness).
    let starting = Observation {
        unready: 1,
        ..Observation::default()
    };
    assert_eq!(
        l.observe(&p, 1, &starting, WINDOW, secs(t0, 28)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &starting, WINDOW, secs(t0, 31)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 0.0)]), WINDOW, secs(t0, 33)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 1, &obs(&[(0.0, 0.0)]), WINDOW, secs(t0, 34)),
        Decision::Zero
    );
}

#[test]
fn queue_backlog_scales_even_from_zero() {
    let p = policy(&[
        (labels::SCALE_MAX, "4"),
        (labels::SCALE_TARGET, "2"),
        (labels::SCALE_TYPE, "queue"),
        (labels::SCALE_ZERO, "true"),
    ]);
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 0);
    let backlog = |q: Option<u64>| Observation {
        queue: q,
        ..Observation::default()
    };
    assert_eq!(
        l.observe(&p, 0, &backlog(Some(0)), WINDOW, t0),
        Decision::Hold
    );
    assert_eq!(l.observe(&p, 0, &backlog(None), WINDOW, t0), Decision::Hold);
    assert_eq!(
        l.observe(&p, 0, &backlog(Some(5)), WINDOW, t0),
        Decision::Scale(3)
    );
    assert_eq!(
        l.observe(&p, 3, &backlog(Some(50)), WINDOW, secs(t0, 2)),
        Decision::Scale(4)
    );
    // Unknown backlog (NATS unreachable): hold.
    assert_eq!(
        l.observe(&p, 4, &backlog(None), WINDOW, secs(t0, 30)),
        Decision::Hold
    );
    assert_eq!(
        l.observe(&p, 4, &backlog(Some(0)), WINDOW, secs(t0, 32)),
        Decision::Scale(1)
    );
}

#[test]
fn a_manual_scale_holds_for_a_window() {
    let p = inflight();
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    l.manual(t0, 4);
    let idle = obs(&[(0.0, 0.0)]);
    assert_eq!(l.observe(&p, 4, &idle, WINDOW, secs(t0, 5)), Decision::Hold);
    assert_eq!(
        l.observe(&p, 4, &idle, WINDOW, secs(t0, 11)),
        Decision::Scale(1)
    );
}

/// One replica whose counter grew by `rps` per second over the last `dt` seconds.
fn at_rate(requests: &mut f64, rps: f64, dt: u64) -> Observation {
    *requests += rps * dt as f64;
    obs(&[(*requests, 0.0)])
}

#[test]
fn alert_rule_steps_up_after_five_seconds_above_five_rps_and_resolves_to_min() {
    let p = policy(&[(labels::SCALE_MIN, "1"), (labels::SCALE_MAX, "2")]);
    assert_eq!(p.rule, Rule::Alert { step: 1 });
    assert!(p.autoscale);
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    let (mut n, mut last) = (0.0, 0);
    let mut at = |l: &mut FunctionLoad, rps: f64, desired: u64, s: u64| {
        let seen = at_rate(&mut n, rps, s - last);
        last = s;
        l.observe(&p, desired, &seen, WINDOW, secs(t0, s))
    };
    assert_eq!(at(&mut l, 10.0, 1, 0), Decision::Hold, "first reading");
    assert_eq!(at(&mut l, 10.0, 1, 2), Decision::Hold, "above since 2 s");
    assert_eq!(at(&mut l, 10.0, 1, 4), Decision::Hold);
    assert_eq!(at(&mut l, 10.0, 1, 6), Decision::Hold);
    assert_eq!(at(&mut l, 10.0, 1, 8), Decision::Scale(2), "fired");
    assert_eq!(at(&mut l, 10.0, 2, 10), Decision::Hold, "at max");
    assert_eq!(at(&mut l, 10.0, 2, 60), Decision::Hold, "at max");
    // The load stops: back to min 10 s later.
    assert_eq!(at(&mut l, 0.0, 2, 62), Decision::Hold);
    assert_eq!(at(&mut l, 0.0, 2, 70), Decision::Hold);
    assert_eq!(at(&mut l, 0.0, 2, 72), Decision::Scale(1), "resolved");
    assert_eq!(at(&mut l, 0.0, 1, 74), Decision::Hold);
}

#[test]
fn alert_rule_repeats_its_step_every_thirty_seconds_and_a_blip_does_not_fire() {
    let p = policy(&[]);
    assert_eq!((p.min, p.max, p.rule), (1, 5, Rule::Alert { step: 1 }));
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    let (mut n, mut last) = (0.0, 0);
    let mut at = |l: &mut FunctionLoad, rps: f64, desired: u64, s: u64| {
        let seen = at_rate(&mut n, rps, s - last);
        last = s;
        l.observe(&p, desired, &seen, WINDOW, secs(t0, s))
    };
    at(&mut l, 0.0, 1, 0);
    // 4 s above the rate, then calm: no alert.
    assert_eq!(at(&mut l, 50.0, 1, 2), Decision::Hold);
    assert_eq!(at(&mut l, 50.0, 1, 6), Decision::Hold);
    assert_eq!(at(&mut l, 1.0, 1, 8), Decision::Hold);
    // Sustained: a step, then one every 30 s.
    assert_eq!(at(&mut l, 50.0, 1, 10), Decision::Hold);
    assert_eq!(at(&mut l, 50.0, 1, 15), Decision::Scale(2));
    assert_eq!(at(&mut l, 50.0, 2, 30), Decision::Hold);
    assert_eq!(at(&mut l, 50.0, 2, 45), Decision::Scale(3));
    // A manual scale above is left alone while calm, and the rule never lowers below min.
    let q = policy(&[(labels::SCALE_FACTOR, "0")]);
    assert!(!q.autoscale, "factor 0 turns autoscaling off");
    let pinned = policy(&[(labels::SCALE_MIN, "2"), (labels::SCALE_MAX, "2")]);
    assert!(!pinned.autoscale, "min == max pins the replicas");
}

#[test]
fn alert_rule_does_not_resolve_on_unreadable_replicas() {
    let p = policy(&[(labels::SCALE_MAX, "3")]);
    let t0 = Instant::now();
    let mut l = FunctionLoad::new(t0, 1);
    let mut n = 0.0;
    for s in [0, 2, 4, 6] {
        l.observe(&p, 1, &at_rate(&mut n, 20.0, 2), WINDOW, secs(t0, s));
    }
    assert_eq!(
        l.observe(&p, 1, &at_rate(&mut n, 20.0, 2), WINDOW, secs(t0, 8)),
        Decision::Scale(2)
    );
    let mut unreadable = obs(&[(n, 0.0)]);
    unreadable.replicas.push(("b".into(), None));
    for s in [20, 40, 60] {
        assert_eq!(
            l.observe(&p, 2, &unreadable, WINDOW, secs(t0, s)),
            Decision::Hold
        );
    }
}
