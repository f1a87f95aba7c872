//! `gateway`: see the library crate for what it does.

use ferry_runtime::service::Service;

const HELP: &str = "\
gateway: ferry's public entry point (OpenFaaS-compatible gateway)

Routes: /function/{name}[.{ns}]/... (sync, to the replica with the fewest calls in
flight; held while the function scales from zero), /async-function/... (queued in JetStream;
Idempotency-Key or X-Call-Id name the call), GET|DELETE /system/async-calls/{call_id}
(status, cancel), /system/dead-letters[/{call_id}[/redrive]] (list, inspect, redrive,
delete), other /system/* (forwarded to the provider), GET /healthz.

Environment (defaults in brackets):
  port                    listen port [8080]
  bind                    listen address; 0.0.0.0 with basic_auth on, else 127.0.0.1
                          [127.0.0.1]; a non-loopback address with basic_auth off is
                          refused unless allow_unauthenticated=true
  allow_unauthenticated   accept such a bind: something else guards /system/* [false]
  functions_provider_url  provider API base URL, http:// [http://127.0.0.1:8081]
  nats_url                NATS server, or several comma-separated (a cluster)
                          [nats://127.0.0.1:4222]
  nats_replicas           replicas of every stream and bucket (3 in a NATS cluster;
                          also nats_stream_replicas) [1]
  nats_duplicate_window   window in which a re-submitted call id is stored once [2m]
  nats_max_age            how long an unprocessed call may stay queued, 0 = forever [0]
  call_status_ttl         how long a call's status record is kept after its last change [24h]
  dead_letter_max_age     how long a dead letter is kept, 0 = until deleted [336h]
  upstream_timeout        longest sync call, 504 past it [60s]
  max_async_body          largest async request body in bytes (or 512KiB, 1MiB) [524288]
  max_sync_body           largest sync request body, 0 = no limit, 413 beyond [64MiB]
  max_request_body        largest /system/* request body, 413 beyond [2MiB]
  read_timeout            longest a request body may stall, 408 past it [30s]
  read_header_timeout     close connections without complete request headers (or idle)
                          after this [10s]
  max_connections         open client connections; more wait to be accepted [10000]
  max_concurrent_requests requests handled at once, 503 beyond; /healthz, /metrics
                          exempt [4096]
  publish_timeout         time to store an async call, 503 past it; 15s with
                          nats_replicas > 1 (outlasts a leader election) [5s]
  endpoint_cache_ttl      how long a function's replica list is reused [1s]
  endpoint_max_stale      oldest replica list still used while it is refreshed; older
                          ones are fetched before the call [5s]
  max_retry_body          largest sync request body (Content-Length) kept to retry a call
                          that never reached its replica on another one [65536]
  function_cache_ttl      how long async calls remember a function exists [5s]
  provider_timeout        timeout of the gateway's own provider look-ups [5s]
  scale_from_zero         hold calls to a function without a ready replica until one is
                          ready, scaling it up from zero first; false = 503 at once [true]
  scale_from_zero_timeout longest a call is held for a ready replica, 503 past it [30s]
  basic_auth              require basic auth on /system/*; /function/*, /async-function/*,
                          /healthz and /metrics stay open [false]
  secret_mount_path       folder of basic-auth-user and basic-auth-password, generated on
                          first start if absent (user admin, random password), with
                          callback-signing-key for the workers [/run/secrets]
  tls_cert_file           PEM certificate chain: serve HTTPS only (HTTP/2 and HTTP/1.1
                          by ALPN) on port; needs tls_key_file [unset: plain HTTP]
  tls_key_file            PEM private key of tls_cert_file [unset]
  tls_reload_interval     how often both files are read again; a changed valid pair is
                          served to new connections, a broken one logged and ignored;
                          0 = never [5s]
  tls_self_signed         write a self-signed pair on first start if none exists, at
                          tls_cert_file/tls_key_file or secret_mount_path/tls.crt, tls.key
                          [false]
  tls_self_signed_hosts   DNS names and IP addresses of that certificate
                          [localhost,127.0.0.1,::1]
  log_format              text | json [text]; RUST_LOG filters [info]

Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200, over
HTTPS when TLS is on).
";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Serving HTTPS, the health check speaks TLS; plain HTTP is the shared check's.
    if std::env::args().skip(1).any(|a| a == "--healthcheck") {
        if let Some(code) = ferry_gateway::tls::healthcheck(&ferry_runtime::env::ProcessEnv) {
            return code;
        }
    }
    let service = Service {
        name: "gateway",
        version: env!("CARGO_PKG_VERSION"),
        help: HELP,
        default_port: ferry_gateway::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_gateway::Config::from_env,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_gateway::run,
        )
        .await
}
