//! Function and namespace names.
//!
//! OpenFaaS names functions and namespaces as DNS labels (lower-case letters, digits and
//! `-`, starting and ending with a letter or digit, at most 63 characters), because on
//! Kubernetes they become Service names. Routes address a function as `name` or
//! `name.namespace`, split on the **last** dot; without a dot the default namespace
//! `openfaas-fn` applies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The namespace a function lives in when none is given.
pub const DEFAULT_NAMESPACE: &str = "openfaas-fn";

/// Longest function or namespace name.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// No name at all.
    #[error("name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("name {0:?} is longer than 63 characters")]
    TooLong(String),
    /// Characters outside `a-z`, `0-9`, `-`, or a leading/trailing `-`.
    #[error(
        "name {0:?} is not valid: use lower-case letters, digits and '-', starting and ending with a letter or digit"
    )]
    Invalid(String),
}

/// A validated function or namespace name (a DNS label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Validates `s` as a DNS label.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(s));
        }
        let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
        let bytes = s.as_bytes();
        if !bytes.iter().all(|&c| ok_char(c)) || bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-'
        {
            return Err(NameError::Invalid(s));
        }
        Ok(Name(s))
    }

    /// The default namespace, `openfaas-fn`.
    pub fn default_namespace() -> Self {
        Name(DEFAULT_NAMESPACE.to_string())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::new(s)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A function addressed by name and namespace, as in `/function/name.namespace`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionRef {
    /// The function's name.
    pub name: Name,
    /// Its namespace.
    pub namespace: Name,
}

impl FunctionRef {
    /// A reference from already validated parts.
    pub fn new(name: Name, namespace: Name) -> Self {
        FunctionRef { name, namespace }
    }

    /// Parses `name` or `name.namespace` (split on the last dot); `default_namespace` applies
    /// when there is no dot.
    pub fn parse(s: &str, default_namespace: &Name) -> Result<Self, NameError> {
        match s.rsplit_once('.') {
            Some((name, ns)) => Ok(FunctionRef {
                name: Name::new(name)?,
                namespace: Name::new(ns)?,
            }),
            None => Ok(FunctionRef {
                name: Name::new(s)?,
                namespace: default_namespace.clone(),
            }),
        }
    }

    /// Resolves a name with an optional explicit namespace (e.g. a `?namespace=` query or a
    /// JSON field). A `name.namespace` form in `name` is accepted when `namespace` is absent or
    /// agrees with it.
    pub fn resolve(name: &str, namespace: Option<&str>) -> Result<Self, NameError> {
        let namespace = namespace.map(str::trim).filter(|n| !n.is_empty());
        match namespace {
            None => FunctionRef::parse(name, &Name::default_namespace()),
            Some(ns) => {
                let ns = Name::new(ns)?;
                match Name::new(name) {
                    Ok(n) => Ok(FunctionRef {
                        name: n,
                        namespace: ns,
                    }),
                    Err(e) => match FunctionRef::parse(name, &ns) {
                        Ok(r) if r.namespace == ns => Ok(r),
                        _ => Err(e),
                    },
                }
            }
        }
    }
}

impl fmt::Display for FunctionRef {
    /// `name.namespace`, the form used in metrics labels and routes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

/// The namespace a faas-provider request acts on: `?namespace=` when it is not empty, else
/// the body's `namespace` when it is not empty, else the default; validated as it is (not
/// trimmed). The provider and the gateway's token checks both read requests with this, so
/// they agree on the namespace.
pub fn request_namespace(query: Option<&str>, body: Option<&str>) -> Result<Name, NameError> {
    let ns = query
        .filter(|n| !n.is_empty())
        .or(body.filter(|n| !n.is_empty()))
        .unwrap_or(DEFAULT_NAMESPACE);
    Name::new(ns)
}

/// The function a faas-provider request names: `name` (or `name.namespace`) with the
/// namespace of `?namespace=` when it is not empty, else of the body (see
/// [`FunctionRef::resolve`]). Shared by the provider and the gateway's token checks.
pub fn request_function(
    name: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<FunctionRef, NameError> {
    let explicit = query
        .filter(|n| !n.is_empty())
        .or(body.filter(|n| !n.is_empty()));
    FunctionRef::resolve(name, explicit)
}

/// Validates a secret name: letters, digits, `.`, `_` and `-`; not `.`/`..`, no `/`.
pub fn validate_secret_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > 253 {
        return Err(NameError::TooLong(s.to_string()));
    }
    let ok = s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !ok || s.starts_with('.') || s.contains("..") {
        return Err(NameError::Invalid(s.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_accepted() {
        for ok in ["a", "figlet", "nodeinfo-2", "0abc", &"a".repeat(63)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_rejected() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert!(matches!(
            Name::new("a".repeat(64)),
            Err(NameError::TooLong(_))
        ));
        for bad in ["Figlet", "-a", "a-", "a_b", "a.b", "a/b", "a b", "é"] {
            assert!(
                matches!(Name::new(bad), Err(NameError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn references_split_on_the_last_dot() {
        let def = Name::default_namespace();
        let r = FunctionRef::parse("figlet", &def).unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_str()),
            ("figlet", "openfaas-fn")
        );
        let r = FunctionRef::parse("figlet.dev", &def).unwrap();
        assert_eq!((r.name.as_str(), r.namespace.as_str()), ("figlet", "dev"));
        assert_eq!(r.to_string(), "figlet.dev");
        // "a.b.c" names function "a.b", which is not a DNS label.
        assert!(FunctionRef::parse("a.b.c", &def).is_err());
        assert!(FunctionRef::parse("figlet.", &def).is_err());
    }

    #[test]
    fn resolve_accepts_query_namespace_or_dotted_name() {
        let r = FunctionRef::resolve("f", Some("dev")).unwrap();
        assert_eq!(r.to_string(), "f.dev");
        let r = FunctionRef::resolve("f.dev", Some("dev")).unwrap();
        assert_eq!(r.to_string(), "f.dev");
        assert!(FunctionRef::resolve("f.dev", Some("prod")).is_err());
        assert_eq!(
            FunctionRef::resolve("f", Some("")).unwrap().to_string(),
            "f.openfaas-fn"
        );
    }

    #[test]
    fn requests_take_the_query_then_the_body_then_the_default() {
        let ns = |q, b| request_namespace(q, b).map(|n| n.to_string());
        assert_eq!(ns(None, None).unwrap(), "openfaas-fn");
        assert_eq!(ns(Some(""), Some("dev")).unwrap(), "dev");
        assert_eq!(ns(Some("prod"), Some("dev")).unwrap(), "prod");
        assert!(ns(Some(" dev"), None).is_err(), "not trimmed");
        let f = |n, q, b| request_function(n, q, b).map(|f| f.to_string());
        assert_eq!(f("echo", None, None).unwrap(), "echo.openfaas-fn");
        assert_eq!(f("echo.dev", None, None).unwrap(), "echo.dev");
        assert_eq!(f("echo", Some(""), Some("dev")).unwrap(), "echo.dev");
        assert_eq!(f("echo", Some(" dev "), None).unwrap(), "echo.dev");
        assert!(f("echo.dev", Some("prod"), None).is_err());
    }

    #[test]
    fn secret_names() {
        for ok in ["api-key", "db.password", "A_B"] {
            assert!(validate_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "../etc", "a/b", ".hidden", "a..b", "a b"] {
            assert!(validate_secret_name(bad).is_err(), "{bad}");
        }
    }
}
