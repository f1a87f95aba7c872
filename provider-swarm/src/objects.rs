//! The Swarm secrets and configs provider-swarm keeps (function secrets, created namespaces):
//! their labels, their names, and reading them back.
//!
//! Swarm secrets and configs are immutable, so a change is a new *version*: a new object
//! labelled `com.ferry.version=<n+1>`, after which the old one is removed. Every object
//! carries `com.ferry.instance=<instance>`, `com.openfaas.namespace=<namespace>`, its kind
//! (`com.ferry.kind=secret|namespace`) and, for a secret, its OpenFaaS name
//! (`com.ferry.secret=<name>`). Its Swarm name is `<name>-<namespace>-<instance>-<n>`
//! (`ns-<namespace>-<instance>-<n>` for a namespace), unique per instance, namespace, name
//! and version; a base that would make it longer than Swarm's 64 characters is cut and ends
//! with a hash of the whole, so two long names never share one.

use std::collections::{BTreeMap, HashMap};

use ferry_proto::labels;

/// Label with an object's kind: [`SECRET`] or [`NAMESPACE`].
pub const KIND_LABEL: &str = "com.ferry.kind";
/// Label with the OpenFaaS name of a secret.
pub const SECRET_LABEL: &str = "com.ferry.secret";
/// Label with an object's version (1, 2, ...).
pub const VERSION_LABEL: &str = "com.ferry.version";
/// Kind of a function secret.
pub const SECRET: &str = "secret";
/// Kind of a created namespace.
pub const NAMESPACE: &str = "namespace";

/// The longest Swarm object name.
const MAX_NAME: usize = 64;

/// One version of a kept object, read back from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Swarm id.
    pub id: String,
    /// Swarm name.
    pub swarm_name: String,
    /// Its namespace.
    pub namespace: String,
    /// The secret's name; the namespace's own for a namespace.
    pub name: String,
    /// Its version.
    pub version: u64,
}

/// The labels of version `version` of `name` in `namespace`, of `kind`, for `instance`.
pub fn labels_of(
    instance: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    version: u64,
) -> HashMap<String, String> {
    let mut out = HashMap::from([
        (labels::FERRY_INSTANCE.to_string(), instance.to_string()),
        (labels::NAMESPACE.to_string(), namespace.to_string()),
        (KIND_LABEL.to_string(), kind.to_string()),
        (VERSION_LABEL.to_string(), version.to_string()),
    ]);
    if kind == SECRET {
        out.insert(SECRET_LABEL.into(), name.into());
    }
    out
}

/// The label filters that find the objects of `kind` of `instance` (in `namespace` only,
/// when given).
pub fn filters(instance: &str, kind: &str, namespace: Option<&str>) -> Vec<String> {
    let mut out = vec![
        format!("{}={instance}", labels::FERRY_INSTANCE),
        format!("{KIND_LABEL}={kind}"),
    ];
    if let Some(ns) = namespace {
        out.push(format!("{}={ns}", labels::NAMESPACE));
    }
    out
}

/// Reads an object of `kind` back from its id, name and labels; `None` if they are not
/// this provider's.
pub fn read(
    kind: &str,
    id: Option<String>,
    swarm_name: Option<String>,
    labels: Option<&HashMap<String, String>>,
) -> Option<Versioned> {
    let labels = labels?;
    if labels.get(KIND_LABEL).map(String::as_str) != Some(kind) {
        return None;
    }
    let namespace = labels.get(labels::NAMESPACE)?.clone();
    let name = match kind {
        SECRET => labels.get(SECRET_LABEL)?.clone(),
        _ => namespace.clone(),
    };
    Some(Versioned {
        id: id?,
        swarm_name: swarm_name.unwrap_or_default(),
        namespace,
        name,
        version: labels.get(VERSION_LABEL)?.parse().ok()?,
    })
}

/// The newest version of each `(namespace, name)`, and the older versions left over.
pub fn newest(all: Vec<Versioned>) -> (BTreeMap<(String, String), Versioned>, Vec<Versioned>) {
    let mut current: BTreeMap<(String, String), Versioned> = BTreeMap::new();
    let mut stale = Vec::new();
    for v in all {
        let key = (v.namespace.clone(), v.name.clone());
        match current.get(&key) {
            Some(c) if c.version >= v.version => stale.push(v),
            _ => {
                if let Some(old) = current.insert(key, v) {
                    stale.push(old);
                }
            }
        }
    }
    (current, stale)
}

/// The Swarm name of version `version` of the object named `base` (`<name>-<ns>-<instance>`):
/// letters and digits at both ends, at most 64 characters.
pub fn swarm_name(base: &str, version: u64) -> String {
    let suffix = format!("-{version}");
    let mut base = if base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base.to_string()
    } else {
        format!("x{base}")
    };
    if base.len() + suffix.len() > MAX_NAME {
        let hash = format!("-{:016x}", fnv1a(base.as_bytes()));
        base.truncate(MAX_NAME - suffix.len() - hash.len());
        base.push_str(&hash);
    }
    base + &suffix
}

/// FNV-1a: a hash that is the same on every build and machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_unique_and_short() {
        assert_eq!(
            swarm_name("db-openfaas-fn-ferry", 1),
            "db-openfaas-fn-ferry-1"
        );
        assert_eq!(swarm_name("_x-dev-ferry", 2), "x_x-dev-ferry-2");
        let long_a = format!("{}-dev-ferry", "a".repeat(200));
        let long_b = format!("{}b-dev-ferry", "a".repeat(200));
        let (a, b) = (swarm_name(&long_a, 12), swarm_name(&long_b, 12));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with("-12"));
    }

    #[test]
    fn labels_read_back_and_the_newest_version_wins() {
        let l = labels_of("ferry", SECRET, "dev", "db", 3);
        let v = read(SECRET, Some("id3".into()), Some("n".into()), Some(&l)).unwrap();
        assert_eq!(
            (v.namespace.as_str(), v.name.as_str(), v.version),
            ("dev", "db", 3)
        );
        assert!(read(NAMESPACE, Some("id".into()), None, Some(&l)).is_none());
        let ns = labels_of("ferry", NAMESPACE, "dev", "dev", 1);
        assert_eq!(
            read(NAMESPACE, Some("c".into()), None, Some(&ns))
                .unwrap()
                .name,
            "dev"
        );
        let older = Versioned {
            id: "id2".into(),
            version: 2,
            ..v.clone()
        };
        let (current, stale) = newest(vec![older.clone(), v.clone()]);
        assert_eq!(current[&("dev".into(), "db".into())], v);
        assert_eq!(stale, vec![older]);
    }
}
