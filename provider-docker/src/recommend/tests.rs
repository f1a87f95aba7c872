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
    assert!(!p.autoscale);
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
