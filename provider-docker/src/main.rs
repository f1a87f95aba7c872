//! `provider-docker`: see the library crate for what it does.

use ferry_runtime::service::Service;

const HELP: &str = "\
provider-docker: the faas-provider API on the Docker Engine

Environment (defaults in brackets):
  port                listen port [8081]
  bind                listen address; 0.0.0.0 with basic_auth on, else 127.0.0.1
                      [127.0.0.1]; a non-loopback address with basic_auth off is refused
                      (/system/* controls Docker) unless allow_unauthenticated=true
  allow_unauthenticated  accept such a bind: something else guards /system/* [false]
  endpoint_mode       how the gateway reaches replicas: published | network [published]
  functions_network   Docker network of function containers [ferry-functions]
  instance            label value owning everything this provider creates [ferry]
  data_dir            desired state and secrets folder [/var/lib/ferry/provider]
  secrets_host_dir    the secrets folder as the Docker host sees it, for bind mounts
                      (set it when the provider runs in a container) [<data_dir>/secrets]
  image_pull_policy   Always | IfNotPresent | Never [IfNotPresent]
  stop_timeout        SIGTERM-to-SIGKILL grace when removing a replica [30s]
  rollout_timeout     how long an update waits for new replicas to be ready [60s]
  probe_timeout       timeout of one readiness probe [1s]
  probe_cache         how long a readiness result is reused [500ms]
  reconcile_interval  how often replica counts are restored [5s]
  unready_timeout     a running replica unready this long is replaced; 0 = never [60s]
  function_cap_add    capabilities function containers keep (all others are dropped),
                      comma-separated, e.g. CHOWN,SETUID [none]
  function_log_max_size  rotated json-file log size per replica; 0 = engine default [10m]
  function_log_max_files rotated log files kept per replica [3]
  autoscale_interval  how often replica metrics are read for autoscaling and scale to zero [2s]
  scale_down_window   autoscaling lowers replicas only to the highest recommendation of
                      this window (label com.openfaas.scale.down.window per function) [60s]
  nats_url            NATS server counted for com.openfaas.scale.type=queue; unset, such
                      functions are not autoscaled [unset]
  basic_auth          require basic auth on /system/* (/healthz, /metrics stay open) [false]
  secret_mount_path   folder of basic-auth-user and basic-auth-password, written by the
                      gateway; waited for up to 60s at start [/run/secrets]
  log_format          text | json [text]; RUST_LOG filters [info]
  DOCKER_HOST         Docker engine address [unix:///var/run/docker.sock]

Flags: --help, --version, --healthcheck (exit 0 if GET /healthz on port answers 200).
";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = Service {
        name: "provider-docker",
        version: env!("CARGO_PKG_VERSION"),
        help: HELP,
        default_port: ferry_provider_docker::config::DEFAULT_PORT,
    };
    service
        .main(
            ferry_provider_docker::Config::from_env,
            |c| std::net::SocketAddr::new(c.bind, c.port),
            ferry_provider_docker::run,
        )
        .await
}
