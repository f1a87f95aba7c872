use std::collections::HashMap;

use super::*;

fn guard(allow: &str, deny: &str) -> CallbackGuard {
    CallbackGuard::new(allow, deny).unwrap()
}

/// The reason `host` is refused at submission, `None` if it passes.
fn refused(g: &CallbackGuard, host: &str) -> Option<Reason> {
    match g.check_host(host) {
        Ok(()) => None,
        Err(GuardError::Denied { reason, .. }) => Some(reason),
        Err(other) => panic!("{host}: {other}"),
    }
}

fn resolved(g: &CallbackGuard, name: &str, ip: &str) -> Option<Reason> {
    match g.check_resolved(name, ip.parse().unwrap()) {
        Ok(()) => None,
        Err(GuardError::Denied { reason, .. }) => Some(reason),
        Err(other) => panic!("{name} {ip}: {other}"),
    }
}

#[test]
fn built_in_denials() {
    let g = CallbackGuard::default();
    for (host, reason) in [
        ("169.254.169.254", Reason::Metadata),
        ("[fd00:ec2::254]", Reason::Metadata),
        ("100.100.100.200", Reason::Metadata),
        ("metadata.google.internal", Reason::Metadata),
        ("METADATA.google.internal.", Reason::Metadata),
        ("169.254.0.1", Reason::LinkLocal),
        ("169.254.170.2", Reason::LinkLocal),
        ("[fe80::1]", Reason::LinkLocal),
        ("[febf:ffff::1]", Reason::LinkLocal),
        ("0.0.0.0", Reason::Unspecified),
        ("0.1.2.3", Reason::Unspecified),
        ("[::]", Reason::Unspecified),
        ("224.0.0.1", Reason::Multicast),
        ("239.255.255.250", Reason::Multicast),
        ("[ff02::1]", Reason::Multicast),
        ("255.255.255.255", Reason::Broadcast),
    ] {
        assert_eq!(refused(&g, host), Some(reason), "{host}");
    }
}

#[test]
fn loopback_private_and_public_destinations_pass_by_default() {
    let g = CallbackGuard::default();
    for host in [
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "172.18.0.5",
        "192.168.1.10",
        "100.64.0.1",
        "[fd12::1]",
        "8.8.8.8",
        "[2001:db8::1]",
        "localhost",
        "receiver",
        "hooks.example.com",
        "169.254.169.254.nip.io",
    ] {
        assert_eq!(refused(&g, host), None, "{host}");
    }
}

#[test]
fn addresses_are_read_as_browsers_read_them() {
    let g = guard("", "127.0.0.0/8");
    // Decimal, hexadecimal and short IPv4 forms are the addresses they stand for.
    assert_eq!(refused(&g, "2852039166"), Some(Reason::Metadata));
    assert_eq!(refused(&g, "0xa9fea9fe"), Some(Reason::Metadata));
    assert_eq!(refused(&g, "169.254.43518"), Some(Reason::Metadata));
    let loopback = Some(Reason::Denied("127.0.0.0/8".into()));
    assert_eq!(refused(&g, "0x7f.1"), loopback);
    assert_eq!(refused(&g, "017700000001"), loopback);
    assert!(matches!(
        g.check_host("[fe80::1"),
        Err(GuardError::InvalidHost(_))
    ));
    assert!(matches!(g.check_host(""), Err(GuardError::InvalidHost(_))));
}

#[test]
fn ipv4_in_ipv6_is_checked_as_ipv4() {
    let g = guard("", "10.0.0.0/8");
    assert_eq!(
        refused(&g, "[::ffff:169.254.169.254]"),
        Some(Reason::Metadata)
    );
    assert_eq!(refused(&g, "[::ffff:a9fe:a9fe]"), Some(Reason::Metadata));
    assert_eq!(refused(&g, "[::ffff:169.254.1.1]"), Some(Reason::LinkLocal));
    assert_eq!(
        refused(&g, "[64:ff9b::169.254.169.254]"),
        Some(Reason::Metadata)
    );
    assert_eq!(
        refused(&g, "[::ffff:10.0.0.1]"),
        Some(Reason::Denied("10.0.0.0/8".into()))
    );
    assert_eq!(refused(&g, "[::ffff:127.0.0.1]"), None);
    // `::1` is loopback, not an IPv4-compatible 0.0.0.1.
    assert_eq!(refused(&g, "[::1]"), None);
    assert_eq!(
        resolved(&g, "rebound.example.com", "::ffff:169.254.169.254"),
        Some(Reason::Metadata)
    );
}

#[test]
fn deny_entries_add_to_the_built_in_ones() {
    let strict = "127.0.0.0/8, ::1, 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";
    let g = guard("", strict);
    for (host, entry) in [
        ("127.0.0.1", "127.0.0.0/8"),
        ("[::1]", "::1"),
        ("10.9.8.7", "10.0.0.0/8"),
        ("172.31.0.1", "172.16.0.0/12"),
        ("[fd00::5]", "fc00::/7"),
    ] {
        assert_eq!(
            refused(&g, host),
            Some(Reason::Denied(entry.into())),
            "{host}"
        );
    }
    assert_eq!(refused(&g, "172.32.0.1"), None);
    assert_eq!(refused(&g, "169.254.169.254"), Some(Reason::Metadata));
}

#[test]
fn host_patterns() {
    let g = guard("", "internal.example.com, *.corp.example.com, [fd00::1]");
    let entry = |e: &str| Some(Reason::Denied(e.into()));
    assert_eq!(
        refused(&g, "Internal.Example.com."),
        entry("internal.example.com")
    );
    assert_eq!(refused(&g, "x.internal.example.com"), None);
    assert_eq!(
        refused(&g, "a.corp.example.com"),
        entry("*.corp.example.com")
    );
    assert_eq!(
        refused(&g, "a.b.corp.example.com"),
        entry("*.corp.example.com")
    );
    assert_eq!(refused(&g, "corp.example.com"), None, "not the apex");
    assert_eq!(refused(&g, "evilcorp.example.com"), None);
    assert_eq!(refused(&g, "[fd00::1]"), entry("[fd00::1]"));
}

#[test]
fn allow_overrides_denials_except_metadata() {
    let g = guard(
        "127.0.0.1, 169.254.0.0/16, receiver.internal, *.hooks.internal",
        "127.0.0.0/8, *.internal",
    );
    assert_eq!(refused(&g, "127.0.0.1"), None);
    assert_eq!(
        refused(&g, "127.0.0.2"),
        Some(Reason::Denied("127.0.0.0/8".into()))
    );
    assert_eq!(refused(&g, "169.254.1.1"), None, "allowed link-local");
    assert_eq!(refused(&g, "169.254.169.254"), Some(Reason::Metadata));
    assert_eq!(refused(&g, "receiver.internal"), None);
    assert_eq!(refused(&g, "a.hooks.internal"), None);
    assert_eq!(
        refused(&g, "other.internal"),
        Some(Reason::Denied("*.internal".into()))
    );
    // An allowed name vouches for its addresses, except metadata ones.
    assert_eq!(resolved(&g, "receiver.internal", "127.0.0.9"), None);
    assert_eq!(resolved(&g, "receiver.internal", "fe80::1"), None);
    assert_eq!(
        resolved(&g, "receiver.internal", "169.254.169.254"),
        Some(Reason::Metadata)
    );
    let g = guard(
        "metadata.google.internal, 169.254.169.254, fd00:ec2::254",
        "",
    );
    assert_eq!(
        refused(&g, "metadata.google.internal"),
        Some(Reason::Metadata)
    );
    assert_eq!(refused(&g, "169.254.169.254"), Some(Reason::Metadata));
    assert_eq!(refused(&g, "[fd00:ec2::254]"), Some(Reason::Metadata));
}

#[test]
fn resolved_addresses_are_checked_with_their_name() {
    let g = guard("", "127.0.0.0/8, *.blocked.example");
    assert_eq!(
        resolved(&g, "localhost", "127.0.0.1"),
        Some(Reason::Denied("127.0.0.0/8".into()))
    );
    assert_eq!(resolved(&g, "localhost", "::1"), None);
    assert_eq!(
        resolved(&g, "a.blocked.example", "8.8.8.8"),
        Some(Reason::Denied("*.blocked.example".into()))
    );
    assert_eq!(
        resolved(&g, "rebound.example.com", "169.254.169.254"),
        Some(Reason::Metadata)
    );
    assert_eq!(
        resolved(&g, "rebound.example.com", "fe80::1"),
        Some(Reason::LinkLocal)
    );
    let err = g
        .check_resolved("Rebound.example.com.", "169.254.169.254".parse().unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "callback destination rebound.example.com (169.254.169.254) refused: \
         a cloud metadata endpoint, never allowed"
    );
    assert!(err.is_final());
}

#[tokio::test]
async fn resolving_keeps_only_allowed_addresses() {
    let g = CallbackGuard::default();
    assert_eq!(
        g.resolve("127.0.0.1").await.unwrap(),
        ["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
    assert!(matches!(
        g.resolve("169.254.169.254").await,
        Err(GuardError::Denied {
            reason: Reason::Metadata,
            ..
        })
    ));
    let found = g.resolve("localhost").await.unwrap();
    assert!(found.iter().all(|ip| ip.is_loopback()), "{found:?}");
    let strict = guard("", "127.0.0.0/8, ::1");
    let err = strict.resolve("localhost").await.unwrap_err();
    assert!(
        matches!(
            &err,
            GuardError::Denied {
                reason: Reason::Denied(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("callback destination localhost ("),
        "{err}"
    );
    let err = g.resolve("nonexistent.invalid").await.unwrap_err();
    assert!(matches!(err, GuardError::Resolve { .. }), "{err}");
    assert!(!err.is_final());
}

#[test]
fn bad_entries_are_refused() {
    for bad in [
        "10.0.0.0/33",
        "10.0.0/8",
        "*.",
        "*.a b",
        "http://x",
        "a..b",
        "fe80::/129",
    ] {
        assert!(
            matches!(CallbackGuard::new("", bad), Err(GuardError::Entry { .. })),
            "{bad}"
        );
        assert!(CallbackGuard::new(bad, "").is_err(), "{bad}");
    }
    assert_eq!(
        CallbackGuard::new(" , ", "").unwrap(),
        CallbackGuard::default()
    );
}

#[test]
fn from_env_names_the_variable() {
    let g = CallbackGuard::from_env(&HashMap::<&str, &str>::new()).unwrap();
    assert_eq!(g, CallbackGuard::default());
    let e: HashMap<&str, &str> = [(DENY_VAR, "127.0.0.0/8"), (ALLOW_VAR, "127.0.0.5")].into();
    let g = CallbackGuard::from_env(&e).unwrap();
    assert_eq!(refused(&g, "127.0.0.5"), None);
    assert!(refused(&g, "127.0.0.1").is_some());
    for name in [DENY_VAR, ALLOW_VAR] {
        let e: HashMap<&str, &str> = [(name, "10.0.0.0/40")].into();
        assert_eq!(CallbackGuard::from_env(&e).unwrap_err().name, name);
    }
}
