//! Where callbacks may go: the guard against server-side request forgery through
//! `X-Callback-Url` (feature `callback-guard`).
//!
//! A callback URL is chosen by whoever submits an async call, and the queue-worker POSTs the
//! result there from inside the platform's network. Without a guard anyone who may submit a
//! call could make the worker talk to the cloud's metadata service (credentials) or to other
//! services only the worker's host can reach. The gateway and the queue-worker share this one
//! policy, read from two settings:
//!
//! - `callback_deny`: comma-separated host names (`internal.example.com`), suffix patterns
//!   (`*.internal.example.com`: its subdomains, not the name itself), IP addresses and CIDRs
//!   (`10.0.0.0/8`, `fd00::/8`) callbacks may not go to, on top of the built-in ones;
//! - `callback_allow`: entries of the same forms that are allowed even though a deny entry or
//!   a built-in range covers them.
//!
//! **Built-in denials** (on unless `callback_allow` makes an exception; metadata endpoints
//! allow none): link-local `169.254.0.0/16` and `fe80::/10`; the cloud metadata endpoints
//! `169.254.169.254` (AWS, GCP, Azure, OCI, DigitalOcean…), `fd00:ec2::254` (AWS over IPv6),
//! `100.100.100.200` (Alibaba Cloud) and the name `metadata.google.internal`; unspecified
//! addresses `0.0.0.0/8` and `::`; multicast `224.0.0.0/4` and `ff00::/8`; broadcast
//! `255.255.255.255`.
//!
//! **Loopback and private ranges are allowed by default**: receivers are routinely other
//! services of the same deployment (compose delivers to containers on its own network, tests
//! to `127.0.0.1`). A deployment that takes callback URLs from untrusted callers should deny
//! them too ("strict"): `callback_deny=127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,
//! 192.168.0.0/16,100.64.0.0/10,fc00::/7`, allowing its own receivers back by name or
//! address in `callback_allow`.
//!
//! **Precedence**, for a host name and (once resolved) each of its addresses: a metadata
//! endpoint is refused whatever the settings; else an allow entry matching the name or the
//! address lets it through; else a deny entry or built-in range matching it refuses it. An
//! allowed *name* therefore vouches for whatever it resolves to (except metadata addresses).
//! Addresses are compared as themselves and, for IPv4-mapped (`::ffff:a.b.c.d`) and NAT64
//! (`64:ff9b::a.b.c.d`) IPv6 addresses, as the IPv4 address they carry.
//!
//! [`CallbackGuard::check_host`] needs no DNS (the gateway's check at submission: an IP
//! literal or a name in a denied range or list is refused, other names pass);
//! [`CallbackGuard::resolve`] resolves a name and keeps only the addresses the policy allows
//! (the queue-worker connects to nothing else, so a name re-pointed after submission — DNS
//! rebinding — gains nothing). Host text is parsed as browsers do (`url::Host`), so
//! `http://0x7f.1/`, `http://2852039166/` and `http://[::ffff:a9fe:a9fe]/` are the addresses
//! they stand for.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::env::{Env, EnvError};

/// The setting listing extra denied destinations.
pub const DENY_VAR: &str = "callback_deny";
/// The setting listing destinations allowed despite a denial.
pub const ALLOW_VAR: &str = "callback_allow";

/// Cloud metadata endpoints, refused whatever `callback_allow` says.
pub const METADATA_ADDRESSES: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Metadata endpoints by name, refused whatever `callback_allow` says.
pub const METADATA_NAMES: [&str; 1] = ["metadata.google.internal"];

/// Ranges refused unless `callback_allow` lets them through.
const BUILT_IN: [(IpNet, Reason); 7] = [
    (v4(169, 254, 0, 0, 16), Reason::LinkLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Reason::LinkLocal),
    (v4(0, 0, 0, 0, 8), Reason::Unspecified),
    (v6([0; 8], 128), Reason::Unspecified),
    (v4(224, 0, 0, 0, 4), Reason::Multicast),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Reason::Multicast),
    (v4(255, 255, 255, 255, 32), Reason::Broadcast),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> IpNet {
    let ip = Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
    IpNet::new_assert(IpAddr::V6(ip), prefix)
}

/// The NAT64 well-known prefix (RFC 6052): `64:ff9b::/96` carries an IPv4 address.
const NAT64: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A cloud metadata endpoint (never allowed).
    Metadata,
    /// Link-local (`169.254.0.0/16`, `fe80::/10`).
    LinkLocal,
    /// Unspecified (`0.0.0.0/8`, `::`).
    Unspecified,
    /// Multicast (`224.0.0.0/4`, `ff00::/8`).
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Matches this `callback_deny` entry.
    Denied(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Metadata => f.write_str("a cloud metadata endpoint, never allowed"),
            Reason::LinkLocal => {
                f.write_str("a link-local address (169.254.0.0/16, fe80::/10) is denied")
            }
            Reason::Unspecified => f.write_str("an unspecified address (0.0.0.0/8, ::) is denied"),
            Reason::Multicast => {
                f.write_str("a multicast address (224.0.0.0/4, ff00::/8) is denied")
            }
            Reason::Broadcast => f.write_str("the broadcast address is denied"),
            Reason::Denied(entry) => write!(f, "matches {DENY_VAR} entry {entry}"),
        }
    }
}

/// Everything the guard can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// An entry of `callback_allow` or `callback_deny` is not usable.
    #[error("{entry:?} is not a host name, *.domain pattern, IP address or CIDR: {reason}")]
    Entry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL's host is not a valid host name or address.
    #[error("{0:?} is not a valid host")]
    InvalidHost(String),
    /// The destination is refused by the policy.
    #[error("callback destination {target} refused: {reason}")]
    Denied {
        /// The host, with the address it resolved to when that is what was refused.
        target: String,
        /// Why.
        reason: Reason,
    },
    /// The host name could not be resolved (may work later).
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
}

impl GuardError {
    /// Whether trying again cannot help: the destination is refused or unusable (a failed
    /// DNS look-up may work later).
    pub fn is_final(&self) -> bool {
        !matches!(self, GuardError::Resolve { .. })
    }
}

/// A host-name entry: one name, or the subdomains of one (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    Suffix(String),
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
        }
    }
}

/// The entries of one setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    /// Each with the entry as written, for messages.
    nets: Vec<(IpNet, String)>,
    names: Vec<(NamePattern, String)>,
}

impl Rules {
    fn parse(list: &str) -> Result<Rules, GuardError> {
        let mut rules = Rules::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |reason: &str| GuardError::Entry {
                entry: entry.to_string(),
                reason: reason.to_string(),
            };
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if entry.contains('/') {
                let net = IpNet::from_str(entry).map_err(|e| bad(&e.to_string()))?;
                rules.nets.push((net, entry.to_string()));
            } else if let Ok(ip) = IpAddr::from_str(bare) {
                rules.nets.push((IpNet::from(ip), entry.to_string()));
            } else if let Some(domain) = entry.strip_prefix("*.") {
                let domain = host_name(domain).ok_or_else(|| bad("not a domain after *."))?;
                let pattern = NamePattern::Suffix(format!(".{domain}"));
                rules.names.push((pattern, entry.to_string()));
            } else {
                let name = host_name(entry).ok_or_else(|| bad("not a host name"))?;
                rules
                    .names
                    .push((NamePattern::Exact(name), entry.to_string()));
            }
        }
        Ok(rules)
    }

    fn name(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|(p, _)| p.matches(name))
            .map(|(_, e)| e.as_str())
    }

    fn address(&self, forms: &[IpAddr]) -> Option<&str> {
        self.nets
            .iter()
            .find(|(net, _)| forms.iter().any(|ip| net.contains(ip)))
            .map(|(_, e)| e.as_str())
    }
}

/// `name` lower-cased without a trailing dot, if it is a plausible DNS name.
fn host_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

/// `ip` as itself and, for an IPv4-mapped or NAT64 IPv6 address, as the IPv4 address in it.
fn forms(ip: IpAddr) -> Vec<IpAddr> {
    let mut forms = vec![ip];
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            forms.push(IpAddr::V4(v4));
        } else if v6.segments()[..6] == NAT64 {
            let [.., a, b, c, d] = v6.octets();
            forms.push(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
        }
    }
    forms
}

/// The policy: built-in denials, `callback_deny`, `callback_allow` (declared once for the
/// gateway and the queue-worker).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[group(skip)]
pub struct CallbackGuard {
    /// Destinations allowed even if callback_deny or a default denial covers them (metadata
    /// endpoints are always refused).
    #[arg(long = ALLOW_VAR, env = ALLOW_VAR, default_value = "", hide_default_value = true,
          value_parser = rules)]
    allow: Rules,
    /// More destinations callbacks may not go to, comma-separated host names, *.domain
    /// patterns, IP addresses and CIDRs; added to the default denials (link-local, cloud
    /// metadata, unspecified, multicast).
    #[arg(long = DENY_VAR, env = DENY_VAR, default_value = "", hide_default_value = true,
          value_parser = rules)]
    deny: Rules,
}

fn rules(v: &str) -> Result<Rules, String> {
    Rules::parse(v.trim()).map_err(|err| err.to_string())
}

/// A host as written in a URL: a name (normalised) or an address.
enum Host {
    Name(String),
    Address(IpAddr),
}

impl CallbackGuard {
    /// The policy from the texts of `callback_allow` and `callback_deny`.
    pub fn new(allow: &str, deny: &str) -> Result<CallbackGuard, GuardError> {
        Ok(CallbackGuard {
            allow: Rules::parse(allow)?,
            deny: Rules::parse(deny)?,
        })
    }

    /// The policy from `callback_allow` and `callback_deny` (both empty by default: the
    /// built-in denials only).
    pub fn from_env(e: &impl Env) -> Result<CallbackGuard, EnvError> {
        crate::settings::from_env(e)
    }

    /// Checks a URL's host as written (`example.com`, `10.0.0.1`, `[fe80::1]`), without DNS:
    /// an address is checked in full, a name against the name entries only.
    pub fn check_host(&self, host: &str) -> Result<(), GuardError> {
        match parse_host(host)? {
            Host::Address(ip) => self
                .decide(None, Some(ip))
                .map_err(|reason| GuardError::Denied {
                    target: ip.to_string(),
                    reason,
                }),
            Host::Name(name) => {
                self.decide(Some(&name), None)
                    .map_err(|reason| GuardError::Denied {
                        target: name,
                        reason,
                    })
            }
        }
    }

    /// Checks `ip`, an address host name `name` resolved to.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), GuardError> {
        let name = host_name(name).unwrap_or_else(|| name.to_ascii_lowercase());
        self.decide(Some(&name), Some(ip))
            .map_err(|reason| GuardError::Denied {
                target: format!("{name} ({ip})"),
                reason,
            })
    }

    /// Resolves host name `name` and returns the addresses the policy allows (an address is
    /// returned as is). Refused when it allows none of them.
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, GuardError> {
        if let Host::Address(ip) = parse_host(name)? {
            self.check_host(name)?;
            return Ok(vec![ip]);
        }
        let failed = |source| GuardError::Resolve {
            host: name.to_string(),
            source,
        };
        let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map_err(failed)?
            .map(|a| a.ip())
            .collect();
        let mut refused = None;
        let mut allowed = Vec::with_capacity(found.len());
        for ip in found {
            match self.check_resolved(name, ip) {
                Ok(()) => allowed.push(ip),
                Err(e) => {
                    tracing::debug!(host = name, %ip, error = %e, "callback address refused");
                    refused.get_or_insert(e);
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(refused)) => Err(refused),
            (true, None) => Err(failed(io::Error::new(
                io::ErrorKind::NotFound,
                "no addresses",
            ))),
        }
    }

    /// The decision for a name, an address, or a name and one of its addresses.
    fn decide(&self, name: Option<&str>, ip: Option<IpAddr>) -> Result<(), Reason> {
        let forms = ip.map(forms).unwrap_or_default();
        if name.is_some_and(|n| METADATA_NAMES.contains(&n))
            || forms.iter().any(|f| METADATA_ADDRESSES.contains(f))
        {
            return Err(Reason::Metadata);
        }
        let allowed = name.is_some_and(|n| self.allow.name(n).is_some())
            || self.allow.address(&forms).is_some();
        if allowed {
            return Ok(());
        }
        let denied = name
            .and_then(|n| self.deny.name(n))
            .or_else(|| self.deny.address(&forms));
        if let Some(entry) = denied {
            return Err(Reason::Denied(entry.to_string()));
        }
        let built_in = BUILT_IN
            .iter()
            .find(|(net, _)| forms.iter().any(|f| net.contains(f)));
        match built_in {
            Some((_, reason)) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

/// A URL host as browsers read it: `[v6]`, IPv4 in any of its forms, or a name.
fn parse_host(host: &str) -> Result<Host, GuardError> {
    let invalid = || GuardError::InvalidHost(host.to_string());
    match url::Host::parse(host).map_err(|_| invalid())? {
        url::Host::Ipv4(v4) => Ok(Host::Address(IpAddr::V4(v4))),
        url::Host::Ipv6(v6) => Ok(Host::Address(IpAddr::V6(v6))),
        url::Host::Domain(name) => {
            // `url` lower-cases and punycodes; only a trailing dot is left to drop.
            let name = name.strip_suffix('.').unwrap_or(&name).to_string();
            if name.is_empty() {
                return Err(invalid());
            }
            Ok(Host::Name(name))
        }
    }
}

#[cfg(test)]
mod tests;
