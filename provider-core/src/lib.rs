//! `ferry-provider-core`: what every ferry provider backend shares.
//!
//! A backend (`provider-docker` on the Docker Engine, `provider-swarm` on Docker Swarm
//! services) implements [`Backend`]: deploy, update, delete, status, list, scale, endpoints,
//! info, health and metrics. This crate turns it into the faas-provider HTTP API:
//!
//! - [`api`]: the routes (`/system/functions`, `/system/function/{name}`,
//!   `/system/scale-function/{name}`, `/system/endpoints/{name}`, `/system/info`, `/healthz`,
//!   `/metrics`), JSON body parsing whatever the `Content-Type`, namespace and function-name
//!   validation, JSON fallbacks for unknown routes and wrong methods;
//! - [`auth`]: basic auth of `/system/*` with the credentials the gateway writes;
//! - [`logs`]: `/system/logs` query parsing and the NDJSON lines and stream;
//! - [`network`]: the attachable functions network, created once;
//! - [`quantity`]: Kubernetes resource quantities of `limits` and `requests`;
//! - [`config`]: settings parsing both backends share;
//! - [`error`]: [`ApiError`], the errors of this layer and their HTTP statuses; a backend's
//!   own error enum converts from it and keeps its own status mapping.
//!
//! A backend adds its own routes (secrets, logs, namespaces) to [`api::routes`] and finishes
//! the router with [`api::finish`].

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod logs;
pub mod network;
pub mod quantity;

pub use api::Backend;
pub use error::ApiError;
