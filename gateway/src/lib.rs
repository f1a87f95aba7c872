//! `gateway`: ferry's public entry point, wire-compatible with the OpenFaaS gateway.
//!
//! - **Sync calls**, any method on `/function/{name}[.{ns}][/sub/path][?query]`, go straight to a
//!   ready replica of the function (no NATS on this path). Replica addresses come from the
//!   provider's `GET /system/endpoints/{name}`, cached per function: used as they are for
//!   `endpoint_cache_ttl`, then refreshed in the background while still used, but never used once
//!   older than `endpoint_max_stale` (the first call after an idle spell waits for a fresh list;
//!   concurrent callers share one look-up). Each call goes to the ready replica with the fewest
//!   calls in flight from this gateway (counted until the response body ends), ties broken
//!   round-robin; never to a replica the provider does not list as ready. A replica that cannot be
//!   connected to is skipped and the list refreshed. A call that never reached its replica (connect
//!   failed, or the connection closed before the request was started) is sent, whatever its method,
//!   to another ready replica from a freshly fetched list, at most 3 replicas in all, when its body
//!   can be sent again: no body, or a `Content-Length` of at most `max_retry_body` (such bodies are
//!   read before the call; streamed or bigger ones are forwarded as they arrive and not retried). A
//!   failure after the request went out is never retried. One pooled keep-alive HTTP/1 client
//!   (`TCP_NODELAY`) streams bodies both ways. Hop-by-hop headers are stripped both ways;
//!   `X-Call-Id` (generated if absent), `X-Start-Time` (Unix ns), `X-Forwarded-For` and
//!   `X-Forwarded-Host` (when absent) are added. Errors: invalid name `400`, a body over
//!   `max_sync_body` `413`, a body stalled for `read_timeout` (or one of at most
//!   `max_retry_body` not received within `upstream_timeout`) `408`, unknown function `404`, no
//!   ready replica `503` (see below), no replica reachable `502`, no answer within
//!   `upstream_timeout` `504`.
//! - **Scaling from zero** (`scale_from_zero`, on by default): a sync call to a function with no
//!   ready replica is held, its body unread, until one is ready (the queue-worker does the same
//!   for async calls, with the same code: `ferry-invoke`). If the function has 0 desired replicas the
//!   gateway first asks the provider for `max(com.openfaas.scale.min, 1)`, once however many
//!   calls wait (log `scale from zero: <fn> 0 => <n>`); if it has some that are still starting,
//!   it just waits. As soon as the provider lists a replica's address, the gateway probes that
//!   replica's readiness path (`GET /_/health` unless annotated, see `ferry_proto::probe`)
//!   itself every 10 ms (one prober per function for all waiting calls), caches the replica
//!   once it answers 200 or 429 (log `scale from zero: <fn> ready after <ms> ms`) and sends the
//!   held calls. No ready replica within `scale_from_zero_timeout` → `503`
//!   saying the function did not become ready in time. The wait does not count toward
//!   `upstream_timeout`. With `scale_from_zero=false`, no ready replica is a `503` at once.
//! - **Async calls**, any method on `/async-function/...`: the function must exist (`404`),
//!   `X-Callback-Url` must be an absolute http(s) URL whose host, as written (no DNS), is
//!   not a denied destination (`callback_allow`, `callback_deny`, built-in link-local and
//!   cloud metadata ranges: `ferry_runtime::callback_guard`) (`400`), the body at most
//!   `max_async_body` (`413`). The call is published as an OpenFaaS `QueueRequest` on
//!   `ferry.calls.<queue>.<name>.<namespace>` (the queue from the `com.openfaas.queue`
//!   annotation, else `faas-request`) with the call id as `Nats-Msg-Id` and `Ferry-Call-Id`,
//!   and answered `202` with `X-Call-Id` and `Location: /system/async-calls/<call_id>` only
//!   once JetStream acknowledged it; NATS down → `503`, never a `202`. The call id is, in
//!   this order: derived from an `Idempotency-Key` header (1–256 printable ASCII characters,
//!   else `400`) as a UUID v5 of `"name.namespace\n" + key`, so a repeated submission within
//!   `nats_duplicate_window` (or while the call's status record exists) is stored once and
//!   answered with the same id, the key winning over `X-Call-Id`; the caller's `X-Call-Id`
//!   (1–128 characters of `A-Z a-z 0-9 - _ . =`, else `400`); or a new UUID v4.
//! - **Call status**: before the publish the gateway creates the call's record in the
//!   `ferry-call-status` key-value bucket (`queued`, create-only, with the callback URL); the
//!   message carries its revision, the worker takes it on from there. If the record cannot be
//!   written the call is not queued (`503`); if the publish fails the record is removed. A call
//!   id that has a record is a repeat (`202`, nothing stored) for the same function within
//!   `nats_duplicate_window` or with an `Idempotency-Key`, else `409`.
//!   `GET /system/async-calls/{call_id}` answers the record (`200`; `404` unknown or expired
//!   after `call_status_ttl`; `400` invalid id). `DELETE` on it cancels a `queued` call (`202`
//!   with the `cancelled` record; a scheduled retry is purged, a message not yet picked up is
//!   acknowledged unrun by the worker) and answers `409` for a running or finished call.
//! - **Dead letters** (stream `ferry-dead-letters`, written by the queue-worker):
//!   `GET /system/dead-letters?function=&namespace=&limit=&after=` pages summaries oldest
//!   first (`limit` 50 by default, at most 500; `next` is the `after` of the next page);
//!   `GET /system/dead-letters/{call_id}` gives the whole dead letter;
//!   `POST /system/dead-letters/{call_id}/redrive` queues the original call again under the
//!   same id (`202` with its status: `queued`, `redrives` + 1, attempts and their history
//!   cleared) and deletes the dead letter; `POST /system/dead-letters/redrive?function=`
//!   does that for every dead letter of a function (`{"redriven": n}`);
//!   `DELETE /system/dead-letters/{call_id}` deletes one (`204`).
//! - **Metrics**: `GET /metrics` (no authentication) serves Prometheus text with OpenFaaS'
//!   names: `gateway_function_invocation_total{function_name,code}`,
//!   `gateway_functions_seconds{function_name,code}` (request to response headers),
//!   `gateway_function_invocation_started`, `gateway_service_count` (desired replicas, read
//!   from the provider at scrape time, at most once a second), plus
//!   `gateway_async_submissions_total{function_name,outcome}` and the scale-from-zero counters
//!   (see `metrics` for the whole list). Only existing functions are labelled. `GET
//!   /system/functions` and `GET /system/function/{name}` are the provider's answers with
//!   `invocationCount` set from these counters; `GET /system/info` is OpenFaaS'
//!   `{"provider", "version", "arch"}` around the provider's own info.
//! - **`/system/*`** other than the above is forwarded to the provider as it is (bodies of at
//!   most `max_request_body`);
//!   `GET /healthz` reports NATS and the provider; anything else is a `404`. Every error the
//!   gateway makes itself is JSON `{"message"}` with `X-OpenFaaS-Internal: proxy`; the
//!   call-status and dead-letter routes answer `503` while NATS is unavailable.
//!
//! - **Basic auth** (`basic_auth=true`, as in OpenFaaS): every `/system` path needs the
//!   credentials in `basic-auth-user` and `basic-auth-password` of `secret_mount_path`
//!   (generated on first start if absent: user `admin`, a random password, mode `0600`), else
//!   `401` with `WWW-Authenticate: Basic realm="Restricted"`; `/function/*`,
//!   `/async-function/*` (but for functions labelled `com.ferry.auth=required`), `/healthz`
//!   and `/metrics` stay open. The gateway sends the same
//!   credentials to the provider on every call, replacing the caller's `Authorization` on
//!   forwarded `/system/*` requests. The log says whether auth is on and where the
//!   credentials came from, never their values.
//!
//! - **API tokens** (with `basic_auth=true`): `Authorization: Bearer <token>` with scopes
//!   `admin`, `deploy`, `invoke`, `read` limited to namespaces, managed by the admin at
//!   `/system/tokens` (`201` shows the token once; `GET` lists without secrets; `DELETE`
//!   revokes). Tokens are stored as SHA-256 hashes in the JetStream bucket `ferry-tokens` and
//!   followed by a watch on every gateway (revocation reaches all of them at once). Every
//!   `/system` route needs a scope in the namespaces the request names, wherever it names
//!   them (`access::rules` has the table); functions labelled `com.ferry.auth=required` need
//!   `invoke` in their namespace (`401` without credentials, `403` with the wrong ones), the
//!   rest stay open. Basic auth counts as `admin`. With `basic_auth=false` nothing is checked
//!   and tokens cannot be created.
//!
//! - **Request limits** (`limits`, `server`): request bodies are checked against their
//!   route's size limit (`max_sync_body`, `max_request_body`, `max_async_body`) by
//!   `Content-Length` before anything is forwarded and while they stream (`413`), and given
//!   up when they stall for `read_timeout` (`408`); never buffered for it. A connection that
//!   does not send complete request headers within `read_header_timeout` (slow-loris, or an
//!   idle keep-alive connection) is closed. At most `max_connections` connections are open
//!   (more wait in the listen backlog) and `max_concurrent_requests` requests handled (more
//!   are answered `503` with `Retry-After: 1`; `/healthz` and `/metrics` exempt).
//!
//! - **TLS** (`tls`, `server`): with `tls_cert_file` and `tls_key_file` the port serves HTTPS
//!   only, HTTP/2 or HTTP/1.1 as the client's ALPN picks, with the same limits (a handshake,
//!   and an HTTP/2 connection without a request in flight, get `read_header_timeout`). The
//!   files are read again every `tls_reload_interval`: a changed valid pair is served to new
//!   connections, an invalid one is logged and the current pair kept.
//!
//! The gateway starts even when NATS is down: the client reconnects in the background and a
//! task creates the calls stream, the dead-letter stream and the status bucket as soon as it
//! can, while sync calls are served meanwhile.
//!
//! # Configuration
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `port` | `8080` | listen port |
//! | `bind` | `127.0.0.1`; `0.0.0.0` with `basic_auth=true` | listen address; a non-loopback one with `basic_auth` off is refused at start-up |
//! | `allow_unauthenticated` | `false` | accept a non-loopback `bind` with `basic_auth` off (something else guards `/system/*`) |
//! | `functions_provider_url` | `http://127.0.0.1:8081` | provider API base URL (`http://`) |
//! | `nats_url` | `nats://127.0.0.1:4222` | NATS server, or a comma-separated list of the servers of a cluster; `user:password@` or `token@` in it authenticate (never logged) |
//! | `nats_replicas` | `1` | replicas of every stream and bucket (3 in a three-node cluster; an existing object is updated to it); `nats_stream_replicas` is its older name |
//! | `nats_duplicate_window` | `2m` | a re-submitted call id is stored once within this |
//! | `nats_max_age` | `0` (forever) | how long an unprocessed call may stay queued |
//! | `call_status_ttl` | `24h` | how long a call's status record is kept after its last change (if the gateway creates the bucket) |
//! | `dead_letter_max_age` | `336h` (14 days) | how long a dead letter is kept, `0` = until deleted (if the gateway creates the stream) |
//! | `upstream_timeout` | `60s` | longest sync call (`504` past it; a streaming response is cut); also how long `/system/*` waits for the provider's response headers |
//! | `max_async_body` | `524288` (512 KiB) | largest async request body (`413` beyond); accepts `512KiB`, `1MiB` |
//! | `max_sync_body` | `67108864` (64 MiB) | largest sync request body, `0` = no limit (`413` by `Content-Length` up front, or once a chunked body grows past it); accepts `64MiB` |
//! | `max_request_body` | `2097152` (2 MiB) | largest `/system/*` request body (`413`, nothing forwarded) |
//! | `read_timeout` | `30s` | longest a request body may stall (no bytes) before the call is given up: `408` unless the response started |
//! | `read_header_timeout` | `10s` | a connection that has not sent complete request headers this long after it opened or after its last response is closed |
//! | `max_connections` | `10000` | open client connections; more wait in the listen backlog until one closes |
//! | `max_concurrent_requests` | `4096` | requests handled at once (until their response starts), `/healthz` and `/metrics` not counted; more get `503` with `Retry-After: 1` |
//! | `publish_timeout` | `5s` (`15s` with `nats_replicas` > 1) | how long an async submission may take to be stored, attempts repeated within it (`503` past it) |
//! | `endpoint_cache_ttl` | `1s` | how long a function's replica list is used before it is refreshed (in the background) |
//! | `endpoint_max_stale` | `5s` | oldest a replica list may be and still be used while it is refreshed; an older one is fetched before the call (at or below `endpoint_cache_ttl`: never use an outdated list) |
//! | `max_retry_body` | `65536` (64 KiB) | largest sync request body (`Content-Length` known up front) read before the call so that it can be retried on another replica when it never reached the first; accepts `64KiB`; `0` = retry only calls without a body |
//! | `function_cache_ttl` | `5s` | how long the gateway remembers that a function exists, its queue, and whether its calls need a token (`com.ferry.auth`) |
//! | `provider_timeout` | `5s` | timeout of the gateway's own provider look-ups (endpoints, status, health, scaling) |
//! | `scale_from_zero` | `true` | hold calls to a function without a ready replica until one is ready, scaling it up from zero replicas first (once, to `max(com.openfaas.scale.min, 1)`); `false`: `503` at once |
//! | `scale_from_zero_timeout` | `30s` | longest a call is held waiting for a ready replica (`503` past it); not counted in `upstream_timeout` |
//! | `basic_auth` | `false` (`true` in compose) | require basic auth (or an API token) on `/system/*` and enforce `com.ferry.auth=required`; the basic-auth credentials are sent to the provider |
//! | `secret_mount_path` | `/run/secrets` | folder of `basic-auth-user` and `basic-auth-password`, generated on first start if absent (with `callback-signing-key` for the workers) |
//! | `callback_deny` | empty | more destinations `X-Callback-Url` may not point to (`400`): host names, `*.domain` patterns, IP addresses, CIDRs, comma-separated; on top of the built-in link-local, cloud metadata, unspecified and multicast ones |
//! | `callback_allow` | empty | destinations allowed despite `callback_deny` or a built-in range (never a cloud metadata endpoint) |
//! | `tls_cert_file`, `tls_key_file` | unset | PEM certificate chain and key (both or neither): the port serves HTTPS only, HTTP/2 and HTTP/1.1 by ALPN ([`tls`]) |
//! | `tls_reload_interval` | `5s` | how often the two files are read again; a changed valid pair is served to new connections, an invalid one logged and ignored; `0` = never |
//! | `tls_self_signed` | `false` | write a self-signed pair on first start if neither file exists (unset paths: `tls.crt`, `tls.key` in `secret_mount_path`) |
//! | `tls_self_signed_hosts` | `localhost,127.0.0.1,::1` | DNS names and IP addresses of that certificate |
//! | `log_format` | `text` | `text` or `json`; `RUST_LOG` filters (default `info`) |
//!
//! # Layout
//!
//! - [`config`]: environment variables and defaults;
//! - [`error`]: [`GatewayError`], its HTTP statuses and JSON body, in one place;
//! - `auth`: the credentials and the middleware that authenticates and authorizes every
//!   request before routing;
//! - `access`: who a request comes from (`Access`), what each route needs (`rules`), the
//!   namespaces a request names (`target`);
//! - `tokens`: API tokens: the bucket, the watch and the in-memory map by hash;
//! - `routes`: the router and one file per route family (`invoke`, `async_invoke`,
//!   `async_calls`, `dead_letters`, `system`, `tokens`, `health`, `metrics`);
//! - `server`: the accept loop: `max_connections`, `read_header_timeout`, graceful shutdown;
//!   HTTP/1.1, or with TLS HTTP/2 and HTTP/1.1 by ALPN;
//! - [`tls`]: HTTPS settings, the certificate and key (checked, reloaded when the files change,
//!   or self-signed), `--healthcheck` over TLS;
//! - `limits`: request body size limits and `read_timeout`, one guard for every route;
//! - `proxy`: forwarding a request upstream and streaming the response back;
//! - `replay`: which sync calls may be sent to another replica, and their bodies kept for it;
//! - `headers`: hop-by-hop stripping, call id, start time, `X-Forwarded-*`, Go-style names;
//! - `path`: splitting `/function/{name}/sub/path`;
//! - `metrics`: the Prometheus registry: calls per function and code (handles cached per
//!   function), async submissions, service counts, scale from zero;
//! - replica lists, the least-in-flight choice, scaling from zero, function settings and the
//!   provider client are the `ferry-invoke` crate's, shared with the queue-worker;
//! - `queue`: the JetStream publisher and the task that keeps the streams and bucket in place;
//! - `call_id`: call ids from `Idempotency-Key`, `X-Call-Id` or UUID v4;
//! - `status`: call status records (compare-and-set) and the cancel and redrive transitions;
//! - `dead_letters`: paging through and looking up dead letters;
//! - `redrive`: putting dead letters back on their queue.

mod access;
mod auth;
mod call_id;
mod call_index;
pub mod config;
mod dead_letters;
pub mod error;
mod headers;
mod limits;
mod metrics;
mod path;
mod prometheus;
mod proxy;
mod queue;
mod queue_depth;
mod redrive;
mod replay;
mod routes;
mod server;
mod status;
mod stream_reader;
#[cfg(test)]
mod test_support;
pub mod tls;
mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::GatewayError;

use ferry_invoke::Invoker;
use metrics::Metrics;
use queue::Queue;

/// How often cache entries of functions nobody calls are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Everything a request handler needs.
struct Gateway {
    config: Config,
    /// Replicas, scaling from zero, function settings, the provider and the HTTP client.
    invoker: Invoker,
    queue: Queue,
    /// What the gateway counts, for the metrics exporter.
    metrics: Arc<Metrics>,
    /// The basic-auth credentials `/system/*` requires (`basic_auth`), else `None`.
    credentials: Option<ferry_runtime::auth::Credentials>,
    /// The API tokens, kept in step with their bucket.
    tokens: tokens::TokenStore,
    /// Prometheus, for functions' history (`faas_prometheus_host`), else `None`.
    prometheus: Option<prometheus::Prometheus>,
}

/// Connects to NATS (in the background if it is down), serves the gateway on `listener`
/// until `shutdown` resolves, then lets in-flight requests finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let credentials = auth::load(&config.auth)?;
    let tls = config.tls.as_ref().map(tls::Tls::start).transpose()?;
    let nats = ferry_runtime::jetstream::connect(&config.nats.url, "ferry-gateway").await?;
    let tokens = tokens::TokenStore::new(nats.clone(), &config.nats);
    let queue = Queue::new(nats, &config.nats, config.publish_timeout);
    let metrics = Arc::new(Metrics::default());
    let invoker = Invoker::new(
        &config.invoke,
        credentials.as_ref(),
        metrics.registry(),
        "gateway",
    );
    let gateway = Arc::new(Gateway {
        invoker,
        queue: queue.clone(),
        metrics,
        credentials,
        tokens: tokens.clone(),
        prometheus: config
            .prometheus_url
            .clone()
            .map(|url| prometheus::Prometheus::new(url, ferry_invoke::client::http_client())),
        config,
    });

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(queue.keep_stream(cancel.clone()));
    tasks.spawn(sweep(gateway.clone(), cancel.clone()));
    tasks.spawn(tokens.keep_watching(cancel.clone()));
    let acceptor = tls.as_ref().map(tls::Tls::acceptor);
    if let Some(tls) = tls {
        tasks.spawn(tls.keep_reloading(cancel.clone()));
    }

    tracing::info!(
        address = %listener.local_addr()?,
        https = acceptor.is_some(),
        provider = %gateway.config.invoke.provider_url,
        nats = %ferry_runtime::redact::url(&gateway.config.nats.url),
        "gateway listening"
    );
    let scale_from_zero = gateway.invoker.scale_from_zero.clone();
    let (max_connections, read_header_timeout) = (
        gateway.config.max_connections,
        gateway.config.read_header_timeout,
    );
    let app = routes::router(gateway);
    server::serve(
        listener,
        app,
        max_connections,
        read_header_timeout,
        acceptor,
        shutdown,
    )
    .await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    let cold = scale_from_zero.snapshot();
    tracing::info!(
        scale_ups = cold.scale_ups,
        cold_starts = cold.cold_starts,
        cold_start_ms = cold.cold_start_time.as_millis() as u64,
        cold_start_timeouts = cold.timeouts,
        held_requests = cold.held_requests,
        "gateway stopped"
    );
    Ok(())
}

/// Forgets cached functions that nobody called for a while (they are refreshed on use, so
/// an old entry is an unused one).
async fn sweep(gateway: Arc<Gateway>, cancel: CancellationToken) {
    let settings = &gateway.config.invoke;
    let idle = (settings.endpoint_cache_ttl * 10)
        .max(settings.function_cache_ttl * 10)
        .max(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
        gateway.invoker.sweep(idle);
    }
}
