//! `provider-docker`: see the library crate for what it does.

use ferry_runtime::service::Service;

const ABOUT: &str = "provider-docker: the faas-provider API on the Docker Engine";

const AFTER_HELP: &str = "\
DOCKER_HOST: the Docker engine's address [unix:///var/run/docker.sock] (read by bollard).
Durations: 200ms, 5s, 2m, 1h30m, or a bare number of seconds.
Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "provider-docker",
        version: env!("CARGO_PKG_VERSION"),
        about: ABOUT,
        after_help: AFTER_HELP,
        default_port: ferry_provider_docker::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_provider_docker::Config::resolve,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_provider_docker::run,
        )
        .await
}
