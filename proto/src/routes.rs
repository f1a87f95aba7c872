//! Route paths of the gateway and the faas-provider API.

/// Sync invocation prefix: `/function/{name}[.{ns}][/sub/path]`.
pub const FUNCTION: &str = "/function/";
/// Async invocation prefix: `/async-function/{name}[.{ns}][/sub/path]`.
pub const ASYNC_FUNCTION: &str = "/async-function/";
/// List, deploy, update and delete functions.
pub const SYSTEM_FUNCTIONS: &str = "/system/functions";
/// One function's status: `/system/function/{name}`.
pub const SYSTEM_FUNCTION: &str = "/system/function/";
/// Scale a function: `/system/scale-function/{name}`.
pub const SYSTEM_SCALE_FUNCTION: &str = "/system/scale-function/";
/// A function's replica endpoints (ferry): `/system/endpoints/{name}`.
pub const SYSTEM_ENDPOINTS: &str = "/system/endpoints/";
/// Provider information.
pub const SYSTEM_INFO: &str = "/system/info";
/// Secrets.
pub const SYSTEM_SECRETS: &str = "/system/secrets";
/// Function logs.
pub const SYSTEM_LOGS: &str = "/system/logs";
/// Namespaces: `GET` lists their names; `/system/namespaces/{name}` is accepted as
/// [`SYSTEM_NAMESPACE`] is.
pub const SYSTEM_NAMESPACES: &str = "/system/namespaces";
/// One namespace: `POST /system/namespace/` creates one (name in the body);
/// `GET`, `PUT`, `DELETE /system/namespace/{name}`.
pub const SYSTEM_NAMESPACE: &str = "/system/namespace/";
/// Liveness and readiness of a service.
pub const HEALTHZ: &str = "/healthz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// Watchdog health.
pub const WATCHDOG_HEALTH: &str = "/_/health";
/// Watchdog readiness.
pub const WATCHDOG_READY: &str = "/_/ready";
