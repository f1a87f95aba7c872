//! Where a service listens: the `bind` address and the `port`.
//!
//! A service whose listener is not protected by basic auth listens on loopback unless told
//! otherwise, so that a process started by hand is not an open door on every interface:
//!
//! - `bind` unset: `0.0.0.0` (all interfaces) when `basic_auth=true`, `127.0.0.1` when it is
//!   off (the default). compose sets `bind=0.0.0.0` explicitly (with `basic_auth=true`), so
//!   that the containers reach each other on the stack's network.
//! - `bind` set: that address (IPv4 or IPv6, no host names). On a service whose API controls
//!   Docker ([`Exposure::Control`]: the provider's `/system/*`, and the gateway's, which
//!   forwards there), a non-loopback address with `basic_auth` off is refused at start-up,
//!   unless `allow_unauthenticated=true` says that something else (a firewall, an
//!   authenticating proxy) guards it. The queue-worker ([`Exposure::Observe`]: only
//!   `/healthz` and `/metrics`) may listen anywhere.
//!
//! The refusal is a configuration error naming `bind` (exit code 64, like any other).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::env::{self, Env, EnvError};

/// `bind` when `basic_auth` is on: all interfaces.
pub const BIND_WITH_AUTH: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `bind` when `basic_auth` is off: loopback only.
pub const BIND_WITHOUT_AUTH: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What a service's listener gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// `/system/*`, which deploys containers: never without credentials beyond loopback,
    /// unless `allow_unauthenticated=true`.
    Control,
    /// Health and metrics only.
    Observe,
}

/// The address to bind: `bind` as set (`None`: unset), else the default for `basic_auth`;
/// `Err` with the reason when `exposure` forbids it.
pub fn decide(
    bind: Option<IpAddr>,
    basic_auth: bool,
    allow_unauthenticated: bool,
    exposure: Exposure,
) -> Result<IpAddr, String> {
    let Some(address) = bind else {
        return Ok(if basic_auth {
            BIND_WITH_AUTH
        } else {
            BIND_WITHOUT_AUTH
        });
    };
    if exposure == Exposure::Control
        && !basic_auth
        && !allow_unauthenticated
        && !address.is_loopback()
    {
        return Err(
            "refusing to serve /system/* (which controls Docker) without basic auth \
             beyond loopback; set basic_auth=true, bind a loopback address, or set \
             allow_unauthenticated=true if something else guards it"
                .to_string(),
        );
    }
    Ok(address)
}

/// Reads `bind`, `basic_auth` and `allow_unauthenticated` and [`decide`]s the address.
pub fn bind_from_env(e: &impl Env, exposure: Exposure) -> Result<IpAddr, EnvError> {
    let bind = env::parse_or(e, "bind", None, parse_ip)?;
    let basic_auth = env::bool_or(e, "basic_auth", false)?;
    let allow = env::bool_or(e, "allow_unauthenticated", false)?;
    decide(bind, basic_auth, allow, exposure).map_err(|reason| EnvError {
        name: "bind".to_string(),
        value: e.get("bind").unwrap_or_default(),
        reason,
    })
}

/// Where a check of the service's own `/healthz` connects: the bound address, or loopback
/// when it listens on all interfaces (`0.0.0.0`, `::`) or `bind` is unset or unusable.
pub fn probe_address(e: &impl Env) -> IpAddr {
    match env::parse_or(e, "bind", None, parse_ip) {
        Ok(Some(IpAddr::V6(a))) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(Some(a)) if !a.is_unspecified() => a,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

fn parse_ip(v: &str) -> Result<Option<IpAddr>, String> {
    v.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| "expected an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::".to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ALL: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn the_default_follows_basic_auth() {
        for exposure in [Exposure::Control, Exposure::Observe] {
            assert_eq!(decide(None, false, false, exposure), Ok(LOOPBACK));
            assert_eq!(decide(None, true, false, exposure), Ok(ALL));
        }
    }

    #[test]
    fn control_beyond_loopback_needs_auth_or_an_explicit_allowance() {
        let lan: IpAddr = "192.0.2.2".parse().unwrap();
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        for address in [ALL, lan, any6] {
            assert!(decide(Some(address), false, false, Exposure::Control).is_err());
            assert_eq!(
                decide(Some(address), false, true, Exposure::Control),
                Ok(address)
            );
            assert_eq!(
                decide(Some(address), true, false, Exposure::Control),
                Ok(address)
            );
            assert_eq!(
                decide(Some(address), false, false, Exposure::Observe),
                Ok(address)
            );
        }
        let v6_loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
        for address in [LOOPBACK, v6_loopback, "127.0.0.2".parse().unwrap()] {
            assert_eq!(
                decide(Some(address), false, false, Exposure::Control),
                Ok(address)
            );
        }
    }

    #[test]
    fn read_from_the_environment() {
        let env = |pairs: &[(&'static str, &'static str)]| -> HashMap<&str, &str> {
            pairs.iter().copied().collect()
        };
        assert_eq!(bind_from_env(&env(&[]), Exposure::Control), Ok(LOOPBACK));
        assert_eq!(
            bind_from_env(&env(&[("basic_auth", "true")]), Exposure::Control),
            Ok(ALL)
        );
        let refused =
            bind_from_env(&env(&[("bind", "0.0.0.0")]), Exposure::Control).expect_err("refused");
        assert_eq!(
            (refused.name.as_str(), refused.value.as_str()),
            ("bind", "0.0.0.0")
        );
        assert!(refused.to_string().contains("allow_unauthenticated=true"));
        let allowed = env(&[("bind", "0.0.0.0"), ("allow_unauthenticated", "true")]);
        assert_eq!(bind_from_env(&allowed, Exposure::Control), Ok(ALL));
        let bad = bind_from_env(&env(&[("bind", "localhost")]), Exposure::Observe);
        assert_eq!(bad.expect_err("not an address").name, "bind");
    }

    #[test]
    fn the_health_check_probes_the_bound_address() {
        let probe = |bind: &'static str| probe_address(&HashMap::from([("bind", bind)]));
        assert_eq!(probe("0.0.0.0"), LOOPBACK);
        assert_eq!(probe("::"), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(probe("192.0.2.2"), "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(probe(""), LOOPBACK);
    }
}
