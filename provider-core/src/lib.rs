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
//! - [`secrets`]: `/system/secrets` over a [`SecretBackend`] (parsing that never echoes a
//!   value, validation, statuses);
//! - [`namespaces`]: `/system/namespaces` and `/system/namespace/{name}` over a
//!   [`NamespaceBackend`], with the rules of which namespaces exist and which can be deleted;
//! - [`engine`]: connecting to the Docker engine and pinging it;
//! - [`config`]: settings parsing both backends share;
//! - [`error`]: [`ApiError`], the errors both backends share (bad requests, basic auth, the
//!   engine, images, secrets, namespaces) and their HTTP statuses; a backend's own error enum
//!   holds it next to its own variants.
//!
//! A backend merges [`secrets::routes`], [`namespaces::routes`] and its own (logs) into
//! [`api::routes`] and finishes the router with [`api::finish`].

pub mod api;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod logs;
pub mod namespaces;
pub mod network;
pub mod quantity;
pub mod secrets;
pub mod usage;

pub use api::Backend;
pub use error::ApiError;
pub use namespaces::NamespaceBackend;
pub use secrets::SecretBackend;
