//! P6: cold start. A function labelled `com.openfaas.scale.zero=true` is scaled to zero (the
//! provider parks its stopped container); the first call through the gateway is timed until
//! its 200. Baseline: a container of the same image run directly, killed, then `docker start`
//! and polled (every 10 ms, like the gateway's readiness probe) until its watchdog answers
//! `GET /` with 200. The figures are the ratios of the medians and of the p99s.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bollard::models::ContainerSummaryStateEnum;
use ferry_tests::ContainerSpec;
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
             `/_/ready` every 10 ms). Baseline, {repeats} times: a container of the same image \
             on the default bridge with a published port, SIGKILLed, then `docker start`, read \
             its published port, poll `GET /` every 10 ms until 200.\n\n- gateway ms: {}\n- raw \
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

/// `docker start` of a killed container of the echo image until its first 200, `n` times (ms).
async fn raw_starts(ctx: &Ctx, n: usize) -> anyhow::Result<Vec<f64>> {
    let guard = &ctx.stack.guard;
    let container = guard
        .run(ContainerSpec::new(ctx.stack.echo.tag.clone(), "p6-raw"))
        .await;
    guard.wait_ready(&container, Duration::from_secs(30)).await;
    let docker = guard.docker();
    let mut out = Vec::new();
    for _ in 0..n {
        docker
            .kill_container(
                &container.id,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .context("killing the raw container")?;
        loop {
            let state = docker.inspect_container(&container.id, None).await?.state;
            if !state.and_then(|s| s.running).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        docker
            .start_container(&container.id, None)
            .await
            .context("starting the raw container")?;
        let port = docker
            .inspect_container(&container.id, None)
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
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "raw start timed out"
            );
            tokio::time::sleep(POLL).await;
        }
        out.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}
