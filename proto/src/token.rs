//! API tokens of the gateway (`/system/tokens`): the [`Scope`]s a token may hold and the
//! bodies of the token API.
//!
//! A token is `ferry_` followed by random letters and digits, sent as
//! `Authorization: Bearer <token>`. It carries one or more scopes and the namespaces they
//! apply to (`["*"]`: all of them, present and future). `admin` covers everything, token
//! management included, whatever the namespaces; `deploy` also grants `read` in its
//! namespaces.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `namespaces` entry that stands for every namespace.
pub const ALL_NAMESPACES: &str = "*";

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "ferry_";

/// One permission of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, in every namespace: what the basic-auth credentials allow.
    Admin,
    /// Deploy, update, delete and scale functions, and manage secrets (implies `read`).
    Deploy,
    /// Call functions (those labelled `com.ferry.auth=required` too), cancel and redrive
    /// their async calls.
    Invoke,
    /// List and describe functions, read logs, call status and dead letters, namespaces,
    /// `/system/info`.
    Read,
}

impl Scope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Scope; 4] = [Scope::Admin, Scope::Deploy, Scope::Invoke, Scope::Read];

    /// The scope's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Deploy => "deploy",
            Scope::Invoke => "invoke",
            Scope::Read => "read",
        }
    }

    /// The scope named `s` (exactly, lower case).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Whether holding `self` grants `wanted`: itself; `admin` everything; `deploy` also
    /// `read`.
    pub fn grants(self, wanted: Scope) -> bool {
        self == wanted || self == Scope::Admin || (self == Scope::Deploy && wanted == Scope::Read)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /system/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The token's name: a DNS label, unique.
    #[serde(default)]
    pub name: String,
    /// Its scopes (`admin`, `deploy`, `invoke`, `read`); at least one.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The namespaces its scopes apply to, or `["*"]` for all; required unless the token is
    /// `admin` (which covers all of them anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
}

/// A token as `GET /system/tokens` lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The namespaces its scopes apply to; `["*"]` for all.
    pub namespaces: Vec<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// The answer to `POST /system/tokens` (`201`): the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    /// Its name.
    pub name: String,
    /// The token, to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The namespaces its scopes apply to; `["*"]` for all.
    pub namespaces: Vec<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_name_and_what_they_grant() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert!(scope.grants(scope));
            assert!(Scope::Admin.grants(scope));
        }
        assert_eq!(Scope::parse("Admin"), None);
        assert_eq!(Scope::parse("write"), None);
        assert!(Scope::Deploy.grants(Scope::Read));
        assert!(!Scope::Deploy.grants(Scope::Invoke));
        assert!(!Scope::Read.grants(Scope::Deploy));
        assert!(!Scope::Invoke.grants(Scope::Read));
    }
}
