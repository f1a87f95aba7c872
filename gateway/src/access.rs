//! Who a request comes from and what it may do, with `basic_auth=true`.
//!
//! [`Access::authenticate`] reads the one `Authorization` header a request may carry:
//!
//! - none: [`Access::Anonymous`];
//! - `Basic` with the credentials of `secret_mount_path` (constant-time compare), or
//!   `Bearer` with a token holding the `admin` scope: [`Access::Admin`], everything;
//! - `Bearer` with another known token: [`Access::Token`], its [`Grant`] (scopes and
//!   namespaces);
//! - anything else (wrong credentials, an unknown or revoked token, another scheme, two
//!   headers): [`Access::Invalid`], which authenticates no one.
//!
//! Schemes are matched in any case (`Bearer`, `bearer`), as RFC 9110 has it; the token
//! itself exactly. With `basic_auth=false` every request is [`Access::Open`].
//!
//! What each route needs is [`rules::rule`] (a pure function of method and path) and, for
//! routes acting in a namespace, [`target::namespaces`] (the namespaces a request names, read
//! the way the provider reads them). `auth::require` applies both before routing; handlers of
//! routes whose namespace is that of a stored call (call status, dead letters) check it
//! themselves with [`Access::demand_function`] once they have read the call.

pub(crate) mod rules;
pub(crate) mod target;

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_proto::token::Scope;
use ferry_proto::{FunctionRef, Name};
use ferry_runtime::auth::Credentials;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::GatewayError;
use crate::tokens::TokenStore;

/// The namespaces a token's scopes apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Namespaces {
    /// Every namespace, present and future (`["*"]`).
    All,
    /// These.
    Only(BTreeSet<Name>),
}

impl Namespaces {
    fn covers(&self, ns: &Name) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(set) => set.contains(ns),
        }
    }
}

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The token's name (logged and quoted; the token never is).
    pub(crate) name: String,
    /// Its scopes.
    pub(crate) scopes: Vec<Scope>,
    /// Where they apply.
    pub(crate) namespaces: Namespaces,
}

impl Grant {
    /// Whether one of its scopes grants `scope` (in some namespace).
    pub(crate) fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(scope))
    }

    /// Whether it allows `scope` in `ns`.
    pub(crate) fn allows(&self, scope: Scope, ns: &Name) -> bool {
        self.has(Scope::Admin) || (self.has(scope) && self.namespaces.covers(ns))
    }
}

/// The caller's standing.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// `basic_auth=false`: nothing is checked.
    Open,
    /// The basic-auth credentials, or a token with the `admin` scope.
    Admin,
    /// A token without `admin`.
    Token(Arc<Grant>),
    /// No `Authorization` header.
    Anonymous,
    /// An `Authorization` header that authenticates no one, and why.
    Invalid(&'static str),
}

impl Access {
    /// Reads the request's `Authorization` header (see the module docs).
    pub(crate) fn authenticate(
        headers: &HeaderMap,
        credentials: &Credentials,
        tokens: &TokenStore,
    ) -> Access {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Access::Anonymous;
        };
        if values.next().is_some() {
            return Access::Invalid("send one Authorization header, not several");
        }
        let text = value.to_str().unwrap_or_default().trim();
        let (scheme, rest) = text
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            match credentials.check(Some(value.as_bytes())) {
                true => Access::Admin,
                false => Access::Invalid("wrong basic-auth credentials"),
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            match tokens.find(rest.trim()) {
                Some(grant) if grant.has(Scope::Admin) => Access::Admin,
                Some(grant) => Access::Token(grant),
                None => Access::Invalid("unknown or revoked API token"),
            }
        } else {
            Access::Invalid("unsupported authorization scheme: use Basic or Bearer")
        }
    }

    /// Whether the request carried ferry credentials (which are not passed on to functions).
    pub(crate) fn is_credential(&self) -> bool {
        matches!(self, Access::Admin | Access::Token(_))
    }

    /// Whether `scope` is allowed in `ns`.
    pub(crate) fn allows(&self, scope: Scope, ns: &Name) -> bool {
        match self {
            Access::Open | Access::Admin => true,
            Access::Token(grant) => grant.allows(scope, ns),
            Access::Anonymous | Access::Invalid(_) => false,
        }
    }

    /// Whether `scope` is allowed in every namespace (nothing to resolve).
    pub(crate) fn everywhere(&self, scope: Scope) -> bool {
        match self {
            Access::Open | Access::Admin => true,
            Access::Token(grant) => grant.has(scope) && grant.namespaces == Namespaces::All,
            Access::Anonymous | Access::Invalid(_) => false,
        }
    }

    /// `401` without valid credentials.
    fn authenticated(&self) -> Result<Option<&Grant>, GatewayError> {
        match self {
            Access::Open | Access::Admin => Ok(None),
            Access::Token(grant) => Ok(Some(grant)),
            Access::Anonymous => Err(GatewayError::Unauthorized),
            Access::Invalid(why) => Err(GatewayError::BadCredentials(why)),
        }
    }

    /// The basic-auth credentials or an `admin` token: else `401` / `403`.
    pub(crate) fn demand_admin(&self) -> Result<(), GatewayError> {
        match self.authenticated()? {
            None => Ok(()),
            Some(grant) => Err(GatewayError::Forbidden(format!(
                "token {:?} has no admin scope, which this route needs",
                grant.name
            ))),
        }
    }

    /// `scope` in at least one namespace: else `401` / `403`.
    pub(crate) fn demand_scope(&self, scope: Scope) -> Result<(), GatewayError> {
        match self.authenticated()? {
            Some(grant) if !grant.has(scope) => Err(lacks(grant, scope)),
            _ => Ok(()),
        }
    }

    /// `scope` in each of `namespaces`; `None` stands for every namespace (a request
    /// that is not limited to one). Else `401` / `403`.
    pub(crate) fn demand(
        &self,
        scope: Scope,
        namespaces: Option<&[Name]>,
    ) -> Result<(), GatewayError> {
        let Some(grant) = self.authenticated()? else {
            return Ok(());
        };
        if !grant.has(scope) {
            return Err(lacks(grant, scope));
        }
        match namespaces {
            None if !self.everywhere(scope) => Err(GatewayError::Forbidden(format!(
                "token {:?} is limited to some namespaces: name one (e.g. ?namespace=)",
                grant.name
            ))),
            None => Ok(()),
            Some(list) => match list.iter().find(|ns| !grant.allows(scope, ns)) {
                Some(ns) => Err(GatewayError::Forbidden(format!(
                    "token {:?} may not use {scope} in namespace {ns}",
                    grant.name
                ))),
                None => Ok(()),
            },
        }
    }

    /// `scope` in the namespace of `function` (`name.namespace`, as call records and dead
    /// letters name it). A name that does not parse is allowed only to whoever has `scope`
    /// everywhere.
    pub(crate) fn demand_function(&self, scope: Scope, function: &str) -> Result<(), GatewayError> {
        if self.everywhere(scope) {
            return Ok(());
        }
        match FunctionRef::parse(function, &Name::default_namespace()) {
            Ok(f) => self.demand(scope, Some(&[f.namespace])),
            Err(_) => self.demand(scope, None),
        }
    }
}

fn lacks(grant: &Grant, scope: Scope) -> GatewayError {
    GatewayError::Forbidden(format!(
        "token {:?} has no {scope} scope, which this route needs",
        grant.name
    ))
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as one scenario
mod tests;
