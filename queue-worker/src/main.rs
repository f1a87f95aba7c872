//! `queue-worker`: see the library crate for what it does.

use ferry_runtime::service::Service;

const HELP: &str = "\
queue-worker: runs ferry's queued (async) function calls from NATS JetStream

Pulls calls from the shared consumer ferry-workers-<queue_name> of stream ferry-calls,
invokes each function at a ready replica (found through the provider, scaled from zero if
need be) with the function's own timeout, renews the JetStream lease while it runs,
schedules retries of retryable failures with backoff (JetStream message schedules, outside
the queue), dead-letters calls that run out of attempts, age or time to stream
ferry-dead-letters, POSTs the result to the call's X-Callback-Url (failed callbacks are
retried from stream ferry-callbacks), records each call's status in bucket
ferry-call-status (compare-and-set only), then acks. Needs NATS 2.12 or later.
Serves /healthz and /metrics (Prometheus) on port.

Environment (defaults in brackets):
  nats_url                   NATS server, or several comma-separated (a cluster)
                             [nats://127.0.0.1:4222]
  nats_replicas              replicas of every stream and bucket (3 in a NATS cluster;
                             also nats_stream_replicas) [1]
  nats_duplicate_window      duplicate window of the calls stream, if created here [2m]
  nats_max_age               age limit of queued calls, if the stream is created here [0 = none]
  call_status_ttl            status records kept after their last change, if created here [24h]
  dead_letter_max_age        dead letters kept, if the stream is created here [336h; 0 = forever]
  functions_provider_url     the provider API (endpoints, settings, scaling) [http://127.0.0.1:8081]
  provider_timeout           longest provider look-up [5s]
  endpoint_cache_ttl         replica lists used this long, then refreshed [1s]
  endpoint_max_stale         oldest replica list still used while refreshed [5s]
  function_cache_ttl         function settings (timeout) used this long [5s]
  scale_from_zero            hold calls to a function without a ready replica [true]
  scale_from_zero_timeout    longest such hold, not part of the call's timeout [30s]
  basic_auth                 send the gateway's credentials to the provider [false]
  secret_mount_path          folder of basic-auth-user, basic-auth-password [/run/secrets]
  queue_name                 queue served (letters, digits, '-', '_') [faas-request]
  max_inflight               calls run at once by this worker (callback retries: as many) [64]
  max_inflight_per_function  calls of one function run at once [max_inflight/2, at least 1]
  ack_wait                   JetStream lease, renewed every third of it while a call runs;
                             how soon a dead worker's calls are redelivered (>= 1s) [30s]
  max_ack_pending            unacked calls allowed across all workers of the queue [10000]
  upstream_timeout           how long a call may run when its function declares no timeout
                             (com.openfaas.timeout, or its exec_timeout/write_timeout) [5m]
  max_call_duration          the longest any call may run; past its timeout a call ends
                             timed_out [24h]
  max_deliveries             deliveries of a call whose workers died before it is
                             dead-lettered instead of run again [10]
  max_buffered_result        largest result kept in memory; larger ones stream [1MiB]
  result_memory              memory for results kept in memory, all calls together [8MiB]
  max_retry_attempts         invocations per call, the first included, 1-100 [10]
  initial_retry_wait         first retry delay, doubling per retry [1s]
  max_retry_wait             longest retry delay (a Retry-After may exceed it, up to 1h) [60s]
  retry_http_codes           statuses retried [408,429,500,502,503,504]
  retry_timed_out            retry calls that ran out of their timeout [false]
  max_event_age              oldest a call may be when invoked; older ones are dead-lettered
                             as expired [0 = no limit]
  callback_timeout           longest callback POST [10s]
  callback_max_attempts      deliveries per callback, the first included, 1-100 [8]
  callback_initial_wait      first callback retry delay, doubling per retry [1s]
  callback_max_wait          longest callback retry delay [60s]
  callback_signing_key_file  key(s) signing callbacks (X-Ferry-Signature), one per line, the
                             first signs; a missing default file means unsigned callbacks
                             [<secret_mount_path>/callback-signing-key]
  shutdown_grace             on SIGTERM, time running calls get to finish [30s]
  pull_expires               how long one pull request waits at the server [2s]
  port                       /healthz and /metrics listen port [8083]
  bind                       their listen address; 0.0.0.0 with basic_auth on, else
                             127.0.0.1 [127.0.0.1]
  log_format                 text | json [text]; RUST_LOG filters [info]

Functions override the retry defaults with the annotations com.openfaas.retry.attempts,
.codes, .min_wait, .max_wait, .max_age and .on_timeout (invalid values: the default, with a
warning), and set their call timeout with com.openfaas.timeout.
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
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_queue_worker::run,
        )
        .await
}
