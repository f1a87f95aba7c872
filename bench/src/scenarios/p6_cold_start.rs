//! P6: cold start. A function labelled `com.openfaas.scale.zero=true` is scaled to zero (the
//! provider parks its stopped container); the first call through the gateway is timed until
//! its 200. Baseline: a twin of the function's container — created from its inspected
//! configuration (image, command, environment, the functions network, both published ports,
//! `init`, security options), carrying only the test label so that the provider ignores it —
//! killed, then `docker start`ed and polled (every 10 ms, like the gateway's readiness probe)
//! until its watchdog answers `GET /` with 200. The twin matters: on this machine a container
//! on a user-defined network with two published ports and `init` starts about 100 ms slower
//! than a plain one on the default bridge with one port, which is Docker's cost, not the
//! gateway's. The figures are the ratios of the medians and of the p99s.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, KillContainerOptions};
use ferry_tests::provider::function_containers;
use serde_json::json;

use super::{Ctx, list};
use crate::report::{Figure, Goal};
use crate::stats::{median, quantile};

const NAME: &str = "cold";
const POLL: Duration = Duration::from_millis(10);

/// Runs P6.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let repeats = if ctx.quick { 2 } else { 7 };
    ctx.stack
        .deploy(NAME, json!({"com.openfaas.scale.zero": "true"}))
        .await?;
    ctx.stack.provider.wait_available(NAME, 1).await;
    let client = ferry_tests::http_client();
    let url = ctx.stack.gateway_url(&format!("/function/{NAME}"));
    anyhow::ensure!(
        client.get(&url).send().await?.status() == 200,
        "{url} before P6"
    );
    let mut cold = Vec::new();
    for _ in 0..repeats {
        to_zero(ctx).await?;
        let start = Instant::now();
        let resp = client.get(&url).send().await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(resp.status() == 200, "cold call: {}", resp.status());
        cold.push(ms);
    }
    let raw = raw_starts(ctx, repeats).await?;
    let (cm, rm) = (median(&cold), median(&raw));
    let (c99, r99) = (quantile(&cold, 0.99), quantile(&raw, 0.99));
    ctx.figure(Figure {
        id: "P6",
        name: "cold start ÷ raw docker start, medians".into(),
        value: cm / rm,
        unit: "",
        goal: Goal::AtMost(1.10),
        baseline: format!("raw {rm:.0} ms (gateway {cm:.0} ms)"),
        raw: format!("gateway ms [{}], raw ms [{}]", list(&cold), list(&raw)),
    });
    ctx.figure(Figure {
        id: "P6",
        name: "cold start ÷ raw docker start, p99".into(),
        value: c99 / r99,
        unit: "",
        goal: Goal::AtMost(1.10),
        baseline: format!("raw {r99:.0} ms (gateway {c99:.0} ms)"),
        raw: format!("p99 of {repeats} = the slowest"),
    });
    ctx.section(
        "P6 cold start",
        format!(
            "{repeats} times: scale `{NAME}` to 0 through the provider, wait until no container \
             of it runs and 1.5 s more (the gateway's endpoint cache expires), then time `GET \
             /function/{NAME}` through the gateway until its 200 (the gateway asks the provider \
             to scale to 1, the provider starts the parked container, the gateway probes \
             `/_/ready` every 10 ms). Baseline, {repeats} times: a twin of the function's container \
             (created from its inspected configuration: same image, environment, functions \
             network, published ports, `init` and security options; only the test label), \
             SIGKILLed, then `docker start`, read its published port, poll `GET /` every 10 ms \
             until 200.\n\n- gateway ms: {}\n- raw \
             ms: {}\n",
            list(&cold),
            list(&raw)
        ),
    );
    Ok(())
}

/// Scales `cold` to zero and waits until none of its containers runs.
async fn to_zero(ctx: &Ctx) -> anyhow::Result<()> {
    let code = ctx.stack.provider.scale(NAME, 0).await;
    anyhow::ensure!(code == 202, "scaling {NAME} to 0: {code}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = function_containers(&ctx.stack.guard, NAME)
            .await
            .iter()
            .any(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING));
        let status = ctx.stack.provider.status(NAME).await;
        if !running && status.is_some_and(|s| s.replicas == 0 && s.available_replicas == 0) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{NAME} did not reach zero in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(())
}

/// `docker start` of a killed twin of `cold`'s container until its first 200, `n` times (ms).
async fn raw_starts(ctx: &Ctx, n: usize) -> anyhow::Result<Vec<f64>> {
    let docker = ctx.stack.guard.docker();
    let id = twin(ctx).await?;
    // The first start (never started before) is not counted: the function's was not either.
    start_until_ok(docker, &id).await?;
    let mut out = Vec::new();
    for _ in 0..n {
        docker
            .kill_container(&id, None::<KillContainerOptions>)
            .await
            .context("killing the raw container")?;
        loop {
            let state = docker.inspect_container(&id, None).await?.state;
            if !state.and_then(|s| s.running).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        out.push(start_until_ok(docker, &id).await?);
    }
    Ok(out)
}

/// Creates a container configured like `cold`'s replica (not started), labelled for the
/// test only, so the provider neither counts nor removes it. Returns its id.
async fn twin(ctx: &Ctx) -> anyhow::Result<String> {
    let guard = &ctx.stack.guard;
    let docker = guard.docker();
    let replica = function_containers(guard, NAME)
        .await
        .into_iter()
        .find_map(|c| c.id)
        .with_context(|| format!("no container of {NAME} to copy"))?;
    let inspected = docker.inspect_container(&replica, None).await?;
    let config = inspected
        .config
        .with_context(|| format!("{NAME}'s container has no configuration"))?;
    let body = ContainerCreateBody {
        image: config.image,
        env: config.env,
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        exposed_ports: config.exposed_ports,
        stop_timeout: config.stop_timeout,
        labels: Some(guard.labels()),
        host_config: inspected.host_config,
        ..Default::default()
    };
    let name = format!("{}-p6-raw", guard.id());
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    Ok(docker
        .create_container(Some(options), body)
        .await
        .context("creating the raw container")?
        .id)
}

/// Starts the stopped container `id`, reads its published port 8080 and polls `GET /` every
/// [`POLL`] until 200; the time from the start request (ms).
async fn start_until_ok(docker: &Docker, id: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    docker
        .start_container(id, None)
        .await
        .context("starting the raw container")?;
    let port = docker
        .inspect_container(id, None)
        .await?
        .network_settings
        .and_then(|s| s.ports)
        .and_then(|mut p| p.remove("8080/tcp").flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port))
        .context("the raw container's published port")?;
    let url = format!("http://127.0.0.1:{port}/");
    let client = ferry_tests::http_client();
    loop {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(start.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "raw start timed out"
        );
        tokio::time::sleep(POLL).await;
    }
}
