//! ferry's wire contract, shared by every binary.
//!
//! These are the OpenFaaS shapes that clients, functions and existing tooling already speak
//! (faas-cli, the faas-provider API, the async queue message), plus the few extensions ferry
//! adds. The crate has no runtime dependencies (serde and base64 only) so that every process,
//! the function watchdog included, can use it.
//!
//! Layout:
//! - [`name`]: validated function and namespace names, `name.namespace` references;
//! - [`function`]: deployments, status, scaling, deletion, replica endpoints;
//! - [`namespace`]: [`namespace::FunctionNamespace`], the body of `/system/namespace/{name}`;
//! - [`secret`], [`info`], [`logs`]: the other provider API bodies;
//! - [`token`]: the gateway's API tokens: scopes and the `/system/tokens` bodies;
//! - [`queue`]: the async [`queue::QueueRequest`] message (PascalCase, Go-compatible);
//! - [`jetstream`]: stream, subject and consumer names of the async queue;
//! - [`calls`]: call status records and dead letters of the async path;
//! - [`probe`]: the readiness probe of a function's replicas, from its annotations;
//! - [`headers`], [`labels`], [`routes`]: the names other tools rely on;
//! - [`error`]: the JSON error body every ferry API answers with;
//! - [`time`]: RFC 3339 timestamps;
//! - [`duration`]: `200ms` / `5s` / `1h30m` durations used in env vars, labels and annotations.

pub mod calls;
pub mod duration;
pub mod error;
pub mod function;
pub mod headers;
pub mod info;
pub mod jetstream;
pub mod labels;
pub mod logs;
pub mod name;
pub mod namespace;
pub mod probe;
pub mod queue;
pub mod routes;
pub mod secret;
pub mod time;
pub mod token;

pub use error::ErrorBody;
pub use function::{
    DeleteFunctionRequest, Endpoint, FunctionDeployment, FunctionEndpoints, FunctionResources,
    FunctionStatus, FunctionUsage, ScaleServiceRequest, Wake,
};
pub use name::{DEFAULT_NAMESPACE, FunctionRef, Name, NameError};
pub use namespace::FunctionNamespace;
pub use queue::{CallbackUrl, QueueRequest};
pub use secret::Secret;
