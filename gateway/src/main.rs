//! `gateway`: see the library crate for what it does.

use ferry_runtime::service::Service;

const ABOUT: &str = "\
gateway: ferry's public entry point (OpenFaaS-compatible gateway)

Routes: /function/{name}[.{ns}]/... (sync, to the replica with the fewest calls in
flight; held while the function scales from zero), /async-function/... (queued in JetStream;
Idempotency-Key or X-Call-Id name the call), GET|DELETE /system/async-calls/{call_id}
(status, cancel), /system/dead-letters[/{call_id}[/redrive]] (list, inspect, redrive,
delete), other /system/* (forwarded to the provider), GET /healthz.";

const AFTER_HELP: &str = "\
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds; sizes: 524288, 512KiB, 1MiB.
Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200, over
HTTPS when TLS is on).";

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
        about: ABOUT,
        after_help: AFTER_HELP,
        default_port: ferry_gateway::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_gateway::Config::resolve,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_gateway::run,
        )
        .await
}
