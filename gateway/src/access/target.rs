//! The namespaces a `/system` request acts in, for a token limited to some namespaces.
//!
//! A request may name a namespace in three places: `?namespace=`, the `namespace` field of
//! its JSON body, and the `.namespace` suffix of a function name. [`namespaces`] returns the
//! namespace the provider (or the gateway's own handler) will act in, computed with the very
//! functions the provider uses (`ferry_proto::name::request_namespace`,
//! `request_function`, `FunctionDeployment::validate`), **plus every namespace the request
//! mentions anywhere**: the token must cover all of them, so a request cannot name one
//! namespace in one place and act in another. The rest is refused with `400` rather than
//! guessed at: a parameter given twice (`?namespace=a&namespace=b`), a mentioned namespace
//! that is not a valid name, a body that is not the JSON the route takes. Bodies are read (at
//! most `max_request_body`) only for tokens that need it, and passed on unchanged.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request};
use bytes::Bytes;
use ferry_proto::name::{request_function, request_namespace};
use ferry_proto::{
    DeleteFunctionRequest, FunctionDeployment, FunctionRef, Name, ScaleServiceRequest, Secret,
};
use http::{Method, Uri};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;
use crate::limits::BodyLimit;

/// Where a route's namespace comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// Nowhere: the route is not about one namespace (`/system/info`, the namespace list).
    None,
    /// `?namespace=`, else the default.
    Query,
    /// A function in the path (`name[.ns]`) with `?namespace=`.
    Function(&'a str),
    /// A namespace in the path.
    Namespace(&'a str),
    /// `?name=` (the function) with `?namespace=`: logs.
    Logs,
    /// `?function=` with `?namespace=`, or `?namespace=` alone, or every namespace: the
    /// dead-letter and async-call lists.
    FunctionFilter,
    /// The body's `service` and `namespace` (a deployment), and `?namespace=`.
    Deployment,
    /// The body's `functionName` and `namespace`, and `?namespace=`.
    DeleteFunction,
    /// A function in the path, the body's `namespace` and `?namespace=`.
    Scale(&'a str),
    /// The body's `namespace` (a secret; `DELETE` may have no body) and `?namespace=`.
    Secret,
}

impl Target<'_> {
    fn needs_body(&self) -> bool {
        matches!(
            self,
            Target::Deployment | Target::DeleteFunction | Target::Scale(_) | Target::Secret
        )
    }
}

/// The namespaces `request` acts in and mentions (`None`: every namespace), and the request
/// (its body read into memory when the target is in it).
pub(crate) async fn namespaces(
    target: Target<'_>,
    request: Request,
    limit: BodyLimit,
) -> Result<(Option<Vec<Name>>, Request), GatewayError> {
    let query = Params::of(request.uri())?;
    if !target.needs_body() {
        return Ok((of_query(target, &query)?, request));
    }
    let (parts, body) = request.into_parts();
    let body = read(body, limit).await?;
    let found = of_body(target, &query, &parts.method, &body)?;
    Ok((Some(found), Request::from_parts(parts, Body::from(body))))
}

/// The namespaces of a target without a body.
fn of_query(target: Target<'_>, q: &Params) -> Result<Option<Vec<Name>>, GatewayError> {
    let ns = q.get("namespace")?;
    let found = match target {
        Target::None => vec![],
        Target::Query => vec![request_namespace(ns, None).map_err(invalid)?],
        Target::Function(name) => function(name, ns, None)?,
        Target::Namespace(name) => vec![Name::new(name).map_err(invalid)?],
        Target::Logs => {
            let name = given(q.get("name")?).ok_or_else(|| {
                GatewayError::InvalidRequest("the \"name\" query parameter is required".into())
            })?;
            function(name, ns, None)?
        }
        Target::FunctionFilter => match (given(q.get("function")?), given(ns)) {
            (Some(name), _) => vec![FunctionRef::resolve(name, ns).map_err(invalid)?.namespace],
            (None, Some(ns)) => vec![Name::new(ns).map_err(invalid)?],
            (None, None) => return Ok(None),
        },
        _ => unreachable!("targets with a body are read by of_body"),
    };
    Ok(Some(found))
}

/// `v` trimmed, unless that leaves nothing.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// The namespaces of a target in the body (and the query).
fn of_body(
    target: Target<'_>,
    q: &Params,
    method: &Method,
    body: &[u8],
) -> Result<Vec<Name>, GatewayError> {
    let ns = q.get("namespace")?;
    match target {
        Target::Deployment => {
            let d: FunctionDeployment = parse(body, "a function deployment")?;
            let f = d
                .validate()
                .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
            with_mentioned(vec![f.namespace], &[ns, Some(&d.namespace)])
        }
        Target::DeleteFunction => {
            let d: DeleteFunctionRequest = parse(body, "{\"functionName\": ...}")?;
            let namespace = request_namespace(ns, Some(&d.namespace)).map_err(invalid)?;
            let f = FunctionRef::resolve(&d.function_name, Some(namespace.as_str()))
                .map_err(invalid)?;
            with_mentioned(vec![f.namespace], &[ns, Some(&d.namespace)])
        }
        Target::Scale(name) => {
            let s: ScaleServiceRequest = parse(body, "{\"serviceName\": ..., \"replicas\": N}")?;
            function(name, ns, Some(&s.namespace))
        }
        Target::Secret => {
            let s: Secret = if method == Method::DELETE && body.iter().all(u8::is_ascii_whitespace)
            {
                Secret::default()
            } else {
                parse(body, "a secret")?
            };
            let namespace = request_namespace(ns, Some(&s.namespace)).map_err(invalid)?;
            with_mentioned(vec![namespace], &[ns, Some(&s.namespace)])
        }
        _ => unreachable!("targets without a body are read by of_query"),
    }
}

/// The namespace of function `name` (with `?namespace=` and a body's namespace), and those.
fn function(
    name: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<Vec<Name>, GatewayError> {
    let f = request_function(name, query, body).map_err(invalid)?;
    with_mentioned(vec![f.namespace], &[query, body])
}

/// `found` plus each namespace in `mentioned` that is not empty (trimmed; `400` when invalid).
fn with_mentioned(
    mut found: Vec<Name>,
    mentioned: &[Option<&str>],
) -> Result<Vec<Name>, GatewayError> {
    for ns in mentioned.iter().flatten().map(|n| n.trim()) {
        if !ns.is_empty() {
            found.push(Name::new(ns).map_err(invalid)?);
        }
    }
    Ok(found)
}

fn invalid(e: ferry_proto::NameError) -> GatewayError {
    GatewayError::InvalidRequest(e.to_string())
}

/// A JSON body, parsed as the provider parses it. serde's message is not quoted (it can
/// repeat part of a secret's value); only where parsing stopped.
fn parse<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::InvalidRequest(format!(
            "the request body is empty; expected {expected} as JSON"
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!(
            "the body is not {expected} as JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// The whole body, within `max_request_body` and `read_timeout`.
async fn read(body: Body, limit: BodyLimit) -> Result<Bytes, GatewayError> {
    limit.check(&body)?;
    let (body, watch) = limit.guard(body);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(watch.or(GatewayError::BadBody(e.to_string()))),
    }
}

/// Query parameters, decoded as the provider decodes them; a parameter read here may be given
/// once at most (a handler reading a map would see only the last of several).
struct Params(HashMap<String, Vec<String>>);

impl Params {
    fn of(uri: &Uri) -> Result<Params, GatewayError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| GatewayError::InvalidQuery(e.body_text()))?;
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        Ok(Params(map))
    }

    fn get(&self, key: &str) -> Result<Option<&str>, GatewayError> {
        match self.0.get(key).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(_) => Err(GatewayError::InvalidRequest(format!(
                "the query parameter {key:?} is given more than once"
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as one scenario
mod tests;
