//! What each route needs, as a pure function of the method and the raw path: [`rule`].
//!
//! | route | needs |
//! |---|---|
//! | any `/function/{fn}`, `/async-function/{fn}` | nothing, unless the function is labelled `com.ferry.auth=required`: then `invoke` in its namespace |
//! | `GET /system/functions`, `GET /system/function/{fn}` | `read` in the namespace |
//! | `POST`, `PUT`, `DELETE /system/functions` | `deploy` in the namespace (body, `?namespace=`) |
//! | `POST /system/scale-function/{fn}` | `deploy` in the namespace |
//! | `GET /system/secrets`; `POST`, `PUT`, `DELETE /system/secrets` | `deploy` in the namespace |
//! | `GET /system/logs` | `read` in the function's namespace |
//! | `GET /system/info`, `GET /system/namespaces`, `GET /system/queues` | `read` (any namespace; queue depths per function only for readable namespaces) |
//! | `GET /system/namespace[s]/{ns}` | `read` in `ns` |
//! | `GET /system/async-calls/{id}`, `GET /system/dead-letters/{id}` | `read` in the call's namespace |
//! | `DELETE /system/async-calls/{id}` (cancel), `POST /system/dead-letters/{id}/redrive`, `DELETE /system/dead-letters/{id}` | `invoke` in the call's namespace |
//! | `GET /system/dead-letters`, `GET /system/async-calls`, `GET /system/function-metrics` | `read` in the namespace of `?function=` / `?namespace=` (all namespaces without them) |
//! | `POST /system/dead-letters/redrive?function=` | `invoke` in the function's namespace |
//! | `/system/tokens[/...]`, `GET /system/endpoints/{fn}`, namespace writes, anything else under `/system` | `admin` |
//! | `/healthz`, `/metrics`, every other path | nothing |
//!
//! `deploy` implies `read`; `admin` (and the basic-auth credentials) everything. A `/system`
//! path that is not in canonical form (an empty, `.` or `..` segment, or any `%`) needs
//! `admin` whatever it looks like, so no spelling of a path reaches a route with less than
//! that route's rule; the router matches the raw path exactly as this reads it. `HEAD` is
//! read as `GET`, as the router serves it.

use ferry_proto::routes::{ASYNC_FUNCTION, FUNCTION};
use ferry_proto::token::Scope;
use http::Method;

use super::target::Target;
use crate::path::FunctionPath;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule<'a> {
    /// Nothing.
    Open,
    /// A function call: open, unless the function is labelled `com.ferry.auth=required`
    /// (then `invoke` in its namespace). The function as in the path (`""` if none).
    Call(&'a str),
    /// The scope in the namespaces the request names.
    Scoped(Scope, Target<'a>),
    /// The scope in the namespace of the call the route acts on, which its handler checks
    /// once it has read the call; here only that the scope is held at all.
    PerCall(Scope),
    /// `admin`.
    Admin,
}

/// The rule of `method` on `path` (raw, as the router matches it).
pub(crate) fn rule<'a>(method: &Method, path: &'a str) -> Rule<'a> {
    for prefix in [FUNCTION, ASYNC_FUNCTION] {
        if path == prefix.trim_end_matches('/') || path.starts_with(prefix) {
            let function = FunctionPath::parse(path, prefix).map_or("", |p| p.function);
            return Rule::Call(function);
        }
    }
    if !is_system(path) {
        return Rule::Open;
    }
    let Some(rest) = path.strip_prefix("/system/") else {
        return Rule::Admin; // `/system` itself
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let canonical = segments
        .iter()
        .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains('%'));
    if !canonical {
        return Rule::Admin;
    }
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    system(method, &segments)
}

/// Whether `path` is `/system` or under it: the routes whose handlers read the request's
/// `Access`.
pub(crate) fn is_system(path: &str) -> bool {
    path == "/system" || path.starts_with("/system/")
}

/// The rule of a canonical `/system/...` path, split into segments.
fn system<'a>(method: &Method, segments: &[&'a str]) -> Rule<'a> {
    use Scope::{Deploy, Invoke, Read};
    let get = method == Method::GET;
    let post = method == Method::POST;
    let put = method == Method::PUT;
    let delete = method == Method::DELETE;
    match segments {
        ["functions"] if get => Rule::Scoped(Read, Target::Query),
        ["functions"] if post || put => Rule::Scoped(Deploy, Target::Deployment),
        ["functions"] if delete => Rule::Scoped(Deploy, Target::DeleteFunction),
        ["function", name] if get => Rule::Scoped(Read, Target::Function(name)),
        ["scale-function", name] if post => Rule::Scoped(Deploy, Target::Scale(name)),
        ["secrets"] if get => Rule::Scoped(Deploy, Target::Query),
        ["secrets"] if post || put || delete => Rule::Scoped(Deploy, Target::Secret),
        ["logs"] if get => Rule::Scoped(Read, Target::Logs),
        ["info"] | ["namespaces"] | ["queues"] if get => Rule::Scoped(Read, Target::None),
        ["namespace" | "namespaces", ns] if get => Rule::Scoped(Read, Target::Namespace(ns)),
        ["async-calls"] | ["function-metrics"] if get => Rule::Scoped(Read, Target::FunctionFilter),
        ["async-calls", _] if get => Rule::PerCall(Read),
        ["async-calls", _] if delete => Rule::PerCall(Invoke),
        ["dead-letters"] if get => Rule::Scoped(Read, Target::FunctionFilter),
        ["dead-letters", "redrive"] if post => Rule::Scoped(Invoke, Target::FunctionFilter),
        ["dead-letters", _] if get => Rule::PerCall(Read),
        ["dead-letters", _] if delete => Rule::PerCall(Invoke),
        ["dead-letters", _, "redrive"] if post => Rule::PerCall(Invoke),
        _ => Rule::Admin,
    }
}
