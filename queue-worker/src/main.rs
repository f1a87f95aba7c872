//! `queue-worker`: see the library crate for what it does.

use ferry_runtime::service::Service;

const ABOUT: &str = "\
queue-worker: runs ferry's queued (async) function calls from NATS JetStream

Pulls calls from the shared consumer ferry-workers-<queue_name> of stream ferry-calls,
invokes each function at a ready replica (found through the provider, scaled from zero if
need be) with the function's own timeout, renews the JetStream lease while it runs,
schedules retries of retryable failures with backoff (JetStream message schedules, outside
the queue), dead-letters calls that run out of attempts, age or time to stream
ferry-dead-letters, POSTs the result to the call's X-Callback-Url (failed callbacks are
retried from stream ferry-callbacks), records each call's status in bucket
ferry-call-status (compare-and-set only), then acks. Needs NATS 2.12 or later.
Serves /healthz and /metrics (Prometheus) on port.";

const AFTER_HELP: &str = "\
Functions override the retry defaults with the annotations com.openfaas.retry.attempts,
.codes, .min_wait, .max_wait, .max_age and .on_timeout (invalid values: the default, with a
warning), and set their call timeout with com.openfaas.timeout.
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds; sizes: 1048576, 1MiB.

Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "queue-worker",
        version: env!("CARGO_PKG_VERSION"),
        about: ABOUT,
        after_help: AFTER_HELP,
        default_port: ferry_queue_worker::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_queue_worker::Config::resolve,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_queue_worker::run,
        )
        .await
}
