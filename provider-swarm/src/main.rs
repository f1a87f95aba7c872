//! `provider-swarm`: see the library crate for what it does.

use ferry_runtime::service::Service;

const ABOUT: &str = "provider-swarm: the faas-provider API on Docker Swarm services";

const AFTER_HELP: &str = "\
DOCKER_HOST: the Docker engine's address, a swarm manager [unix:///var/run/docker.sock]
(read by bollard).
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds.
Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "provider-swarm",
        version: env!("CARGO_PKG_VERSION"),
        about: ABOUT,
        after_help: AFTER_HELP,
        default_port: ferry_provider_swarm::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_provider_swarm::Config::resolve,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_provider_swarm::run,
        )
        .await
}
