//! The replica choice: round robin, least in flight, failed and tried replicas skipped.

use ferry_proto::{Endpoint, Name};

use std::sync::atomic::Ordering;

use super::*;

fn endpoints(ready: &[(&str, bool)]) -> FunctionEndpoints {
    FunctionEndpoints {
        name: "f".into(),
        namespace: "openfaas-fn".into(),
        replicas: ready.len() as u64,
        endpoints: ready
            .iter()
            .enumerate()
            .map(|(i, (address, ready))| Endpoint {
                id: i.to_string(),
                address: address.to_string(),
                ready: *ready,
            })
            .collect(),
        probe: Default::default(),
    }
}

fn replicas(ready: &[(&str, bool)]) -> Replicas {
    Replicas::from_endpoints(endpoints(ready), &Loads::default(), &[])
}

fn authority(s: &str) -> Authority {
    s.parse().unwrap()
}

#[test]
fn round_robin_over_idle_ready_replicas_skipping_failed_ones() {
    let r = replicas(&[
        ("127.0.0.1:1", true),
        ("127.0.0.1:2", false),
        ("127.0.0.1:3", true),
        ("not an address", true),
    ]);
    assert_eq!(r.ready.len(), 2);
    let picks: Vec<usize> = (0..4).map(|_| r.choose(&[]).unwrap()).collect();
    assert_eq!(picks, [0, 1, 0, 1]);
    r.ready[0].failed.store(true, Ordering::Relaxed);
    assert_eq!(r.choose(&[]), Some(1));
    assert_eq!(r.choose(&[]), Some(1));
    assert!(r.any_usable());
    r.ready[1].failed.store(true, Ordering::Relaxed);
    assert_eq!(r.choose(&[]), None);
    assert!(!r.any_usable());
    assert_eq!(replicas(&[]).choose(&[]), None);
}

#[test]
fn replicas_a_call_already_tried_are_not_chosen_again() {
    let r = replicas(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]);
    let tried = [authority("127.0.0.1:1")];
    for _ in 0..4 {
        assert_eq!(r.choose(&tried), Some(1));
    }
    let both = [tried[0].clone(), authority("127.0.0.1:2")];
    assert_eq!(r.choose(&both), None);
    let one = replicas(&[("127.0.0.1:1", true)]);
    assert_eq!(one.choose(&[]), Some(0));
    assert_eq!(one.choose(&tried), None);
}

#[test]
fn the_replica_with_the_fewest_calls_in_flight_is_chosen() {
    // (in-flight counts, failed replicas, the picks of successive calls that hold
    // nothing; ties go round-robin from a counter that starts at 0).
    let table: &[(&[usize], &[usize], &[usize])] = &[
        (&[0, 0, 0], &[], &[0, 1, 2, 0]),
        (&[1, 0, 0], &[], &[1, 1, 2, 1]),
        (&[1, 0, 1], &[], &[1, 1, 1, 1]),
        (&[2, 1, 3], &[], &[1, 1, 1, 1]),
        (&[5, 5, 2], &[], &[2, 2, 2, 2]),
        (&[3, 3, 3], &[], &[0, 1, 2, 0]),
        (&[1, 0, 1], &[1], &[0, 2, 2, 0]),
        (&[0, 0, 0], &[0, 1, 2], &[]),
    ];
    for (loads, failed, picks) in table {
        let r = replicas(&[
            ("127.0.0.1:1", true),
            ("127.0.0.1:2", true),
            ("127.0.0.1:3", true),
        ]);
        for (replica, load) in r.ready.iter().zip(loads.iter()) {
            replica.load.store(*load, Ordering::Relaxed);
        }
        for &i in *failed {
            r.ready[i].failed.store(true, Ordering::Relaxed);
        }
        let got: Vec<usize> = (0..picks.len()).map(|_| r.choose(&[]).unwrap()).collect();
        assert_eq!(&got, picks, "loads {loads:?}, failed {failed:?}");
        if picks.is_empty() {
            assert_eq!(r.choose(&[]), None);
        }
    }
}

#[test]
fn calls_are_counted_until_released_and_spread_as_they_pile_up() {
    let f = FunctionRef::parse("f", &Name::default_namespace()).unwrap();
    let cache: Cache<Replicas> = Cache::new(
        Duration::from_secs(1),
        Duration::from_secs(5),
        Arc::new(|_| async { Ok(None) }.boxed()),
    );
    let entry = cache.insert(
        "f",
        f,
        replicas(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]),
    );
    let loads = || -> Vec<usize> {
        entry
            .value
            .ready
            .iter()
            .map(|r| r.load.load(Ordering::Relaxed))
            .collect()
    };
    // A slow call holds replica 0: every following call goes to replica 1 while each
    // finishes before the next starts.
    let slow = Chosen::pick(entry.clone(), &[]).unwrap();
    assert_eq!(slow.index, 0);
    for _ in 0..5 {
        let quick = Chosen::pick(entry.clone(), &[]).unwrap();
        assert_eq!(quick.index, 1);
    }
    assert_eq!(loads(), [1, 0]);
    // Calls that overlap even the loads out.
    let a = Chosen::pick(entry.clone(), &[]).unwrap();
    assert_eq!(a.index, 1);
    let b = Chosen::pick(entry.clone(), &[]).unwrap();
    let c = Chosen::pick(entry.clone(), &[]).unwrap();
    assert_ne!(b.index, c.index);
    assert_eq!(loads(), [2, 2]);
    // The count moves with the InFlight taken for the response body.
    let held = slow.into_in_flight();
    drop((a, b, c));
    assert_eq!(loads(), [1, 0]);
    drop(held);
    assert_eq!(loads(), [0, 0]);
}

#[tokio::test]
async fn counts_survive_a_refresh_of_the_list() {
    let loads = Loads::default();
    let first = Replicas::from_endpoints(
        endpoints(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]),
        &loads,
        &[],
    );
    first.ready[0].load.fetch_add(1, Ordering::Relaxed);
    // The refreshed list lists the replicas in another order, and a new one.
    let second = Replicas::from_endpoints(
        endpoints(&[
            ("127.0.0.1:3", true),
            ("127.0.0.1:2", true),
            ("127.0.0.1:1", true),
        ]),
        &loads,
        &[],
    );
    let counts: Vec<usize> = second
        .ready
        .iter()
        .map(|r| r.load.load(Ordering::Relaxed))
        .collect();
    assert_eq!(counts, [0, 0, 1]);
    assert_ne!(second.choose(&[]), Some(2));
    // Counters of addresses no list has any more are swept.
    drop((first, second));
    loads.sweep();
    assert!(loads.by_address.lock().unwrap().is_empty());
}

#[test]
fn replicas_the_gateway_saw_ready_count_as_ready() {
    let e = endpoints(&[("127.0.0.1:1", false), ("127.0.0.1:2", false)]);
    let r = Replicas::from_endpoints(e, &Loads::default(), &[authority("127.0.0.1:2")]);
    assert_eq!(r.ready.len(), 1);
    assert_eq!(r.ready[0].authority, authority("127.0.0.1:2"));
}
