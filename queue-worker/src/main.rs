//! `queue-worker`: see the library crate for what it does.

use ferry_runtime::service::Service;

const HELP: &str = "\
queue-worker: runs ferry's queued (async) function calls from NATS JetStream

Pulls calls from the shared consumer ferry-workers-<queue_name> of stream ferry-calls,
invokes each function through the gateway (<gateway_url>/function/<name>...), renews the
JetStream lease while it runs, retries retryable failures with backoff (NAK with a delay),
dead-letters calls that run out of attempts or age to stream ferry-dead-letters, POSTs the
result to the call's X-Callback-Url (failed callbacks are retried from stream
ferry-callbacks), records each call's status in bucket ferry-call-status, then acks.
Serves /healthz and /metrics (Prometheus) on port.

Environment (defaults in brackets):
  nats_url                   NATS server [nats://127.0.0.1:4222]
  nats_stream_replicas       replicas of streams and bucket, if created here [1]
  nats_duplicate_window      duplicate window of the calls stream, if created here [2m]
  nats_max_age               age limit of queued calls, if the stream is created here [0 = none]
  call_status_ttl            status records kept after their last change, if created here [24h]
  dead_letter_max_age        dead letters kept, if the stream is created here [336h; 0 = forever]
  gateway_url                where functions are invoked, http:// or https:// [http://127.0.0.1:8080]
  queue_name                 queue served (letters, digits, '-', '_') [faas-request]
  max_inflight               calls run at once by this worker (callback retries: as many) [64]
  max_inflight_per_function  calls of one function run at once [max_inflight/2, at least 1]
  ack_wait                   JetStream lease, renewed every third of it while a call runs;
                             how soon a dead worker's calls are redelivered (>= 1s) [30s]
  max_ack_pending            unacked calls allowed across all workers of the queue [10000]
  upstream_timeout           longest function call; status 504 beyond [5m]
  max_retry_attempts         invocations per call, the first included, 1-100 [10]
  initial_retry_wait         first retry delay, doubling per retry [1s]
  max_retry_wait             longest retry delay (a Retry-After may exceed it, up to 1h) [60s]
  retry_http_codes           statuses retried [408,429,500,502,503,504]
  max_event_age              oldest a call may be when invoked; older ones are dead-lettered
                             as expired [0 = no limit]
  callback_timeout           longest callback POST [10s]
  callback_max_attempts      deliveries per callback, the first included, 1-100 [8]
  callback_initial_wait      first callback retry delay, doubling per retry [1s]
  callback_max_wait          longest callback retry delay [60s]
  shutdown_grace             on SIGTERM, time running calls get to finish [30s]
  pull_expires               how long one pull request waits at the server [2s]
  port                       /healthz and /metrics listen port [8083]
  log_format                 text | json [text]; RUST_LOG filters [info]

Functions override the retry defaults with the annotations com.openfaas.retry.attempts,
.codes, .min_wait, .max_wait and .max_age (invalid values: the default, with a warning).
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds.

Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).
";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "queue-worker",
        version: env!("CARGO_PKG_VERSION"),
        help: HELP,
        default_port: ferry_queue_worker::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_queue_worker::Config::from_env,
            |c| c.port,
            ferry_queue_worker::run,
        )
        .await
}
