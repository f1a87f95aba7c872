//! The async invocation message.
//!
//! OpenFaaS queues an async call as JSON produced by Go's `encoding/json` from
//! `faas-provider/types.QueueRequest`: **PascalCase** keys, the body as standard base64
//! (Go's `[]byte`), headers as name → list of values (Go's `http.Header`), and the callback as
//! a serialised Go `net/url.URL` *object*. ferry writes exactly that shape, so OpenFaaS tools
//! can read ferry's queue, and reads the callback both as that object and as a plain string.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One queued async call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRequest {
    /// Original request headers (canonical names → values).
    #[serde(
        rename = "Header",
        default,
        deserialize_with = "crate::function::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub header: BTreeMap<String, Vec<String>>,
    /// Original `Host`.
    #[serde(rename = "Host", default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Request body (base64 on the wire).
    #[serde(
        rename = "Body",
        default,
        with = "base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub body: Vec<u8>,
    /// Original method; the call is replayed with it.
    #[serde(rename = "Method", default)]
    pub method: String,
    /// Sub-path after `/async-function/<name>` (e.g. `/x/y`), empty for none.
    #[serde(rename = "Path", default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Raw query string, without `?`.
    #[serde(
        rename = "QueryString",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub query_string: String,
    /// The function as addressed in the URL: `name` or `name.namespace`.
    #[serde(rename = "Function", default)]
    pub function: String,
    /// Target queue.
    #[serde(
        rename = "QueueName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub queue_name: String,
    /// Function annotations passed to the worker.
    #[serde(
        rename = "Annotations",
        default,
        deserialize_with = "crate::function::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Function labels passed to the worker.
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "crate::function::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Environment passed to the worker.
    #[serde(
        rename = "Environment",
        default,
        deserialize_with = "crate::function::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, String>,
    /// Where to POST the result.
    #[serde(
        rename = "CallbackUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_url: Option<CallbackUrl>,
}

impl QueueRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }
}

/// A callback URL, kept as its string form.
///
/// Serialises as a Go `net/url.URL` object (`Scheme`, `Host`, `Path`, `RawQuery`, ...);
/// deserialises from that object or from a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackUrl(String);

impl CallbackUrl {
    /// Wraps a URL string (validation is the caller's job).
    pub fn new(url: impl Into<String>) -> Self {
        CallbackUrl(url.into())
    }

    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Go's `url.URL` as `encoding/json` writes it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GoUrl {
    #[serde(rename = "Scheme")]
    scheme: String,
    #[serde(rename = "Opaque")]
    opaque: String,
    #[serde(rename = "User")]
    user: Option<GoUserinfo>,
    #[serde(rename = "Host")]
    host: String,
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "RawPath")]
    raw_path: String,
    #[serde(rename = "OmitHost")]
    omit_host: bool,
    #[serde(rename = "ForceQuery")]
    force_query: bool,
    #[serde(rename = "RawQuery")]
    raw_query: String,
    #[serde(rename = "Fragment")]
    fragment: String,
    #[serde(rename = "RawFragment")]
    raw_fragment: String,
}

/// Go serialises `*url.Userinfo` as `{}` (no exported fields), losing credentials. ferry
/// adds the two fields below, which Go ignores, so its own worker keeps them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GoUserinfo {
    #[serde(rename = "Username", skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(rename = "Password", skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl GoUrl {
    fn from_str(s: &str) -> GoUrl {
        let mut u = GoUrl::default();
        let (rest, fragment) = split_once_or(s, '#');
        if let Some(f) = fragment {
            u.fragment = percent_decode(f);
            if u.fragment != f {
                u.raw_fragment = f.to_string();
            }
        }
        let (rest, query) = split_once_or(rest, '?');
        if let Some(q) = query {
            u.raw_query = q.to_string();
            u.force_query = q.is_empty();
        }
        let rest = match rest.split_once(':') {
            Some((scheme, after)) if is_scheme(scheme) => {
                u.scheme = scheme.to_string();
                after
            }
            _ => rest,
        };
        let path = if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            let host = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let (user, pass) = split_once_or(userinfo, ':');
                    u.user = Some(GoUserinfo {
                        username: percent_decode(user),
                        password: pass.map(percent_decode),
                    });
                    host
                }
                None => authority,
            };
            u.host = host.to_string();
            &after[end..]
        } else if !u.scheme.is_empty() && !rest.starts_with('/') {
            u.opaque = rest.to_string();
            ""
        } else {
            rest
        };
        u.path = percent_decode(path);
        if u.path != path {
            u.raw_path = path.to_string();
        }
        u
    }

    fn to_url_string(&self) -> String {
        let mut s = String::new();
        if !self.scheme.is_empty() {
            s.push_str(&self.scheme);
            s.push(':');
        }
        if !self.opaque.is_empty() {
            s.push_str(&self.opaque);
        } else {
            if !self.host.is_empty() || !self.scheme.is_empty() || self.user.is_some() {
                s.push_str("//");
                if let Some(user) = self.user.as_ref().filter(|u| !u.username.is_empty()) {
                    s.push_str(&percent_encode(&user.username));
                    if let Some(p) = &user.password {
                        s.push(':');
                        s.push_str(&percent_encode(p));
                    }
                    s.push('@');
                }
                s.push_str(&self.host);
            }
            if !self.raw_path.is_empty() {
                s.push_str(&self.raw_path);
            } else {
                s.push_str(&percent_encode_path(&self.path));
            }
        }
        if self.force_query || !self.raw_query.is_empty() {
            s.push('?');
            s.push_str(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            s.push('#');
            if self.raw_fragment.is_empty() {
                s.push_str(&percent_encode_path(&self.fragment));
            } else {
                s.push_str(&self.raw_fragment);
            }
        }
        s
    }
}

impl Serialize for CallbackUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        GoUrl::from_str(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for CallbackUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Object(Box<GoUrl>),
        }
        match Either::deserialize(d)
            .map_err(|_| D::Error::custom("CallbackUrl must be a URL string or a URL object"))?
        {
            Either::Text(s) => Ok(CallbackUrl(s)),
            Either::Object(u) => Ok(CallbackUrl(u.to_url_string())),
        }
    }
}

fn split_once_or(s: &str, c: char) -> (&str, Option<&str>) {
    match s.split_once(c) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn percent_encode_with(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    percent_encode_with(s, |_| false)
}

fn percent_encode_path(s: &str) -> String {
    percent_encode_with(s, |b| b"/!$&'()*+,;=:@".contains(&b))
}

/// Serde adapter for `Vec<u8>` as standard base64 (Go's `[]byte` encoding).
pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// Reads base64 (or `null`, meaning empty).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(s) => STANDARD.decode(s.as_bytes()).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_through_the_go_object() {
        for s in [
            "http://127.0.0.1:9000/callback",
            "https://example.com/a/b?x=1&y=2#frag",
            "http://user:p%40ss@host:8080/path%20with%20space?q",
            "http://h/?",
            "http://gateway:8080/function/next",
        ] {
            let go = GoUrl::from_str(s);
            assert_eq!(go.to_url_string(), s);
        }
        let go = GoUrl::from_str("http://user:p%40ss@host:8080/x");
        let user = go.user.unwrap();
        assert_eq!(
            (user.username.as_str(), user.password.as_deref()),
            ("user", Some("p@ss"))
        );
    }
}
