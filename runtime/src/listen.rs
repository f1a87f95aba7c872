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

use crate::env::{Env, EnvError};
use crate::settings;

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

/// `bind`, declared once for every service.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
#[group(skip)]
pub struct Bind {
    /// Listen address (an IP address); unset: 0.0.0.0 with basic_auth on, else 127.0.0.1.
    #[arg(long = "bind", env = "bind", value_parser = settings::ip)]
    pub bind: Option<IpAddr>,
}

impl Bind {
    /// The address to bind ([`decide`]); `Err` names `bind` when `exposure` forbids it.
    pub fn address(
        &self,
        basic_auth: bool,
        allow_unauthenticated: bool,
        exposure: Exposure,
    ) -> Result<IpAddr, EnvError> {
        decide(self.bind, basic_auth, allow_unauthenticated, exposure).map_err(|reason| EnvError {
            name: "bind".to_string(),
            value: self.bind.map(|a| a.to_string()).unwrap_or_default(),
            reason,
        })
    }
}

/// `bind` and `allow_unauthenticated`, declared once for the services whose `/system/*`
/// controls Docker ([`Exposure::Control`]).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
#[group(skip)]
pub struct ControlBind {
    /// `bind`.
    #[command(flatten)]
    pub bind: Bind,
    /// Accept a non-loopback bind with basic_auth off: something else (a firewall, an
    /// authenticating proxy) guards /system/*.
    #[arg(long = "allow_unauthenticated", env = "allow_unauthenticated",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = settings::boolean)]
    pub allow_unauthenticated: bool,
}

impl ControlBind {
    /// The address to bind; a non-loopback one with `basic_auth` off is refused unless
    /// `allow_unauthenticated`.
    pub fn address(&self, basic_auth: bool) -> Result<IpAddr, EnvError> {
        self.bind
            .address(basic_auth, self.allow_unauthenticated, Exposure::Control)
    }
}

/// Where a check of the service's own `/healthz` connects: the bound address, or loopback
/// when it listens on all interfaces (`0.0.0.0`, `::`) or `bind` is unset or unusable.
pub fn probe_address(e: &impl Env) -> IpAddr {
    match settings::from_env::<Bind>(e).map(|b| b.bind) {
        Ok(Some(IpAddr::V6(a))) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(Some(a)) if !a.is_unspecified() => a,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
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

    /// `bind` from `e`, as a service with `exposure` and `basic_auth` from `e` decides it.
    fn bind_from_env(e: &impl Env, exposure: Exposure) -> Result<IpAddr, EnvError> {
        let bind: ControlBind = settings::from_env(e)?;
        let basic_auth = e.get("basic_auth").is_some_and(|v| v == "true");
        bind.bind
            .address(basic_auth, bind.allow_unauthenticated, exposure)
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
