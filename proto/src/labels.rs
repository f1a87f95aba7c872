//! Label and annotation keys.
//!
//! The `com.openfaas.*` keys are OpenFaaS's, so functions deployed with existing stack files
//! keep their meaning; `com.ferry.*` keys are ferry's own bookkeeping on containers.

/// On every function container: the function's name.
pub const FUNCTION: &str = "com.openfaas.function";
/// In every function's status: the function's name (as OpenFaaS providers report it).
pub const FAAS_FUNCTION: &str = "faas_function";
/// On every function container: the function's namespace.
pub const NAMESPACE: &str = "com.openfaas.namespace";
/// Prefix under which annotations are stored as container labels (as faasd does).
pub const ANNOTATION_PREFIX: &str = "com.openfaas.annotations.";

/// Minimum replicas (also the initial count and the scale-from-zero target).
pub const SCALE_MIN: &str = "com.openfaas.scale.min";
/// Maximum replicas.
pub const SCALE_MAX: &str = "com.openfaas.scale.max";
/// Percent of `max` added per step of the alert rule (OpenFaaS CE); `0` turns it off.
pub const SCALE_FACTOR: &str = "com.openfaas.scale.factor";
/// Target load per replica.
pub const SCALE_TARGET: &str = "com.openfaas.scale.target";
/// What load means: `rps`, `inflight` or `queue`.
pub const SCALE_TYPE: &str = "com.openfaas.scale.type";
/// Opt in to scale to zero.
pub const SCALE_ZERO: &str = "com.openfaas.scale.zero";
/// Idle time before scaling to zero.
pub const SCALE_ZERO_DURATION: &str = "com.openfaas.scale.zero-duration";
/// Which idle tiers a function at zero goes through: `freeze,stop` (the default), `freeze`
/// or `stop` (ferry's; see the provider's `freeze` module).
pub const SCALE_ZERO_TIERS: &str = "com.ferry.scale.zero.tiers";
/// How long a frozen function stays frozen before it is stopped (ferry's; default: the
/// provider's `frozen_stop_after`).
pub const SCALE_ZERO_STOP_AFTER: &str = "com.ferry.scale.zero.stop-after";
/// Stabilisation window of autoscaling down: the highest recommendation of this window wins.
pub const SCALE_DOWN_WINDOW: &str = "com.openfaas.scale.down.window";

/// Annotation: the named queue the function's async calls go to.
pub const QUEUE: &str = "com.openfaas.queue";
/// Annotation: invocations allowed, the first included.
pub const RETRY_ATTEMPTS: &str = "com.openfaas.retry.attempts";
/// Annotation: status codes that are retried.
pub const RETRY_CODES: &str = "com.openfaas.retry.codes";
/// Annotation: first backoff delay.
pub const RETRY_MIN_WAIT: &str = "com.openfaas.retry.min_wait";
/// Annotation: largest backoff delay.
pub const RETRY_MAX_WAIT: &str = "com.openfaas.retry.max_wait";
/// Annotation: oldest a queued call may be when it is (re)invoked; older ones are dead-lettered.
pub const RETRY_MAX_AGE: &str = "com.openfaas.retry.max_age";
/// Annotation: `true` to retry a call that ran out of its timeout (else it ends `timed_out`).
pub const RETRY_ON_TIMEOUT: &str = "com.openfaas.retry.on_timeout";

/// On everything a provider creates in Docker: which provider instance owns it.
pub const FERRY_INSTANCE: &str = "com.ferry.instance";
/// On function containers: the deployment generation the container was made from.
pub const FERRY_GENERATION: &str = "com.ferry.generation";
/// On function containers: a hash of the deployment spec the container was made from.
pub const FERRY_SPEC_HASH: &str = "com.ferry.spec-hash";

/// Label (or annotation) of a function whose calls need an API token: with the value
/// [`AUTH_REQUIRED`], the gateway (with `basic_auth=true`) answers `/function/<name>` and
/// `/async-function/<name>` only for a token with the `invoke` scope in the function's
/// namespace, or the admin credentials.
pub const AUTH: &str = "com.ferry.auth";
/// The value of [`AUTH`] that requires a token.
pub const AUTH_REQUIRED: &str = "required";
