//! `provider-swarm`: see the library crate for what it does.

use ferry_runtime::service::Service;

const HELP: &str = "\
provider-swarm: the faas-provider API on Docker Swarm services

Environment (defaults in brackets):
  port                listen port [8082]
  bind                listen address; 0.0.0.0 with basic_auth on, else 127.0.0.1
                      [127.0.0.1]; a non-loopback address with basic_auth off is refused
                      unless allow_unauthenticated=true
  allow_unauthenticated  accept such a bind: something else guards /system/* [false]
  functions_network   attachable overlay network of the function services, created when
                      missing [ferry-functions-swarm]
  instance            label value owning every service, network, secret and config it
                      creates [ferry]
  stop_timeout        the services' stop grace period, SIGTERM to SIGKILL [30s]
  reconcile_interval  how often stray services of this instance, and secret versions an
                      update left, are removed [5s]
  basic_auth          require basic auth on /system/* (/healthz, /metrics stay open) [false]
  secret_mount_path   folder of basic-auth-user and basic-auth-password, written by the
                      gateway; waited for up to 60s at start [/run/secrets]
  log_format          text | json [text]; RUST_LOG filters [info]
  DOCKER_HOST         Docker engine address (a swarm manager) [unix:///var/run/docker.sock]

Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).
";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "provider-swarm",
        version: env!("CARGO_PKG_VERSION"),
        help: HELP,
        default_port: ferry_provider_swarm::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_provider_swarm::Config::from_env,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_provider_swarm::run,
        )
        .await
}
