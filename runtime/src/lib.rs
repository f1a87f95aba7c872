//! Process plumbing shared by ferry's binaries.
//!
//! Every ferry process is configured by environment variables (OpenFaaS's lower-case names),
//! logs through `tracing`, and stops cleanly on SIGTERM. The small modules here keep
//! those habits identical across `gateway`, `queue-worker`, `provider-docker` and `watchdog`:
//!
//! - [`env`]: the [`env::Env`] source trait (the process environment, or a map in tests);
//! - [`settings`]: settings declared once with clap (variable, flag, default, parser,
//!   `--help`), read from an [`env::Env`], errors naming the variable;
//! - [`telemetry`]: `tracing` subscriber set-up (`RUST_LOG`, `log_format=json|text`);
//! - [`signal`]: a future that resolves on SIGTERM or SIGINT;
//! - [`redact`]: URLs with their credentials (and a callback URL's query) hidden, for logs
//!   and error bodies;
//! - [`listen`]: the listening address (`bind`, `port`), loopback unless `basic_auth` is on;
//! - [`service`]: the shared `main` of the network services (flags, logging, configuration,
//!   listening socket, exit codes);
//! - [`healthcheck`]: the `--healthcheck` flag of every service (a blocking `GET /healthz` on
//!   its own port, for Docker health checks in `FROM scratch` images);
//! - `jetstream` (feature `jetstream`): NATS connection and the calls stream, set up the same
//!   way by the gateway and the queue-worker;
//! - `status` (feature `jetstream`): the call-status store both write, compare-and-set only;
//! - `tls` (feature `tls`): installs the TLS crypto provider HTTPS clients need;
//! - `auth` (feature `auth`): basic-auth credentials of `/system/*` (`basic_auth`,
//!   `secret_mount_path`): read, generated on first start, checked in constant time.
//! - `callback_guard` (feature `callback-guard`): where callbacks may go (`callback_allow`,
//!   `callback_deny`, built-in denials of link-local and cloud metadata addresses), checked
//!   by the gateway at submission and by the queue-worker on every resolved address.
//! - `headers` (feature `http`): hop-by-hop headers, stripped the same way by every process
//!   that forwards HTTP; `body` (feature `http`): a body cut at a deadline;
//! - `backoff` (feature `backoff`): doubling pauses between attempts at what must work sooner
//!   or later (backon's exponential backoff).

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "backoff")]
pub mod backoff;
#[cfg(feature = "http")]
pub mod body;
#[cfg(feature = "callback-guard")]
pub mod callback_guard;
pub mod env;
#[cfg(feature = "http")]
pub mod headers;
pub mod healthcheck;
#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod listen;
pub mod redact;
pub mod service;
pub mod settings;
pub mod signal;
#[cfg(feature = "jetstream")]
pub mod status;
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;
