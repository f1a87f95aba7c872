//! P6: cold start, from both idle tiers. Two functions labelled `com.openfaas.scale.zero=true`:
//! `cold` with the default tiers (at zero its replica is frozen: `docker pause`) and `parked`
//! with `com.ferry.scale.zero.tiers=stop` (its replica is stopped). Each is scaled to zero
//! through the provider and, once its container is paused (or stopped), the first call through
//! the gateway is timed until its 200. Frozen has absolute targets; stopped is compared with a
//! baseline: a twin of `parked`'s container — created from its inspected configuration (image,
//! command, environment, the functions network, both published ports, `init`, security
//! options), carrying only the test label so that the provider ignores it — killed, then
//! `docker start`ed and polled (every 10 ms, like the gateway's readiness probe) until its
//! watchdog answers `GET /` with 200. The twin matters: on this machine a container on a
//! user-defined network with two published ports and `init` starts about 100 ms slower than a
//! plain one on the default bridge with one port, which is Docker's cost, not the gateway's.
//!
//! Every look-up and write between the call's arrival and the unpause (or start) is listed
//! with its mean time, read from the gateway's `gateway_cold_start_step_seconds` and the
//! provider's `provider_wake_step_seconds` around each call (see [`STEPS`]).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, KillContainerOptions};
use ferry_tests::provider::{function_containers, sample};
use serde_json::json;

use super::{Ctx, list};
use crate::report::{Figure, Goal};
use crate::stats::{median, quantile};

/// The function with the default tiers (frozen at zero).
const FROZEN: &str = "cold";
/// The function with `com.ferry.scale.zero.tiers=stop` (stopped at zero).
const STOPPED: &str = "parked";
const POLL: Duration = Duration::from_millis(10);

/// The steps of a cold call: (where, metric series with `TIER` for the tier, what it is). The
/// first is what the series do not cover: the rest of the total.
const STEPS: [(&str, &str, &str); 8] = [
    (
        "gateway",
        "",
        "endpoint look-up (`GET /system/endpoints`: the cached list expired; it says 0 desired \
         replicas, so the episode scales at once) and proxying the call: the rest of the total",
    ),
    (
        "gateway",
        "gateway_cold_start_step_seconds_sum{step=\"list\",tier=\"TIER\"}",
        "episode look-ups of the replicas (`GET /system/endpoints`; none for a thaw: the scale \
         answer has the address)",
    ),
    (
        "gateway",
        "gateway_cold_start_step_seconds_sum{step=\"scale\",tier=\"TIER\"}",
        "the conditional scale request (`POST /system/scale-function`, `fromZero`), of which:",
    ),
    (
        "provider",
        "provider_wake_step_seconds_sum{step=\"lock\",tier=\"TIER\"}",
        "· reading the desired state and taking the function's lock",
    ),
    (
        "provider",
        "provider_wake_step_seconds_sum{step=\"thaw\",tier=\"TIER\"}",
        "· `docker unpause` of the frozen replica (nothing else is looked up first)",
    ),
    (
        "provider",
        "provider_wake_step_seconds_sum{step=\"store\",tier=\"TIER\"}",
        "· writing the desired state (one write, synced)",
    ),
    (
        "provider",
        "provider_wake_step_seconds_sum{step=\"reconcile\",tier=\"TIER\"}",
        "· listing the containers and `docker start` of the parked one (skipped after a thaw)",
    ),
    (
        "gateway",
        "gateway_cold_start_step_seconds_sum{step=\"probe\",tier=\"TIER\"}",
        "probing the replica's `/_/health` every 10 ms until it answers ready",
    ),
];
/// The indexes in [`STEPS`] of the gateway's own steps (list, scale, probe).
const GATEWAY_STEPS: [usize; 3] = [1, 2, 7];

/// Runs P6.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (frozen_n, stopped_n) = if ctx.quick { (3, 2) } else { (15, 11) };
    ctx.stack
        .deploy(FROZEN, json!({"com.openfaas.scale.zero": "true"}))
        .await?;
    ctx.stack
        .deploy(
            STOPPED,
            json!({"com.openfaas.scale.zero": "true", "com.ferry.scale.zero.tiers": "stop"}),
        )
        .await?;
    for name in [FROZEN, STOPPED] {
        ctx.stack.provider.wait_available(name, 1).await;
        let url = ctx.stack.gateway_url(&format!("/function/{name}"));
        let status = ferry_tests::http_client().get(&url).send().await?.status();
        anyhow::ensure!(status == 200, "{url} before P6: {status}");
    }
    let frozen = cold_calls(ctx, FROZEN, "frozen", frozen_n).await?;
    let stopped = cold_calls(ctx, STOPPED, "stopped", stopped_n).await?;
    let raw = raw_starts(ctx, stopped_n).await?;
    figures(ctx, &frozen, &stopped, &raw);
    Ok(())
}

/// One tier's cold calls: each call's time to its 200 (ms), and the mean of each of [`STEPS`]
/// (ms; the first is the rest of the total).
struct Tier {
    times: Vec<f64>,
    steps: Vec<f64>,
}

/// `n` times: `name` to zero (its container `tier`), then one call through the gateway.
async fn cold_calls(ctx: &Ctx, name: &str, tier: &str, n: usize) -> anyhow::Result<Tier> {
    let client = ferry_tests::http_client();
    let url = ctx.stack.gateway_url(&format!("/function/{name}"));
    let state = if tier == "frozen" {
        ContainerSummaryStateEnum::PAUSED
    } else {
        ContainerSummaryStateEnum::EXITED
    };
    let mut times = Vec::new();
    let mut sums = vec![0.0; STEPS.len()];
    for _ in 0..n {
        to_zero(ctx, name, state).await?;
        let before = step_sums(ctx, tier).await?;
        let start = Instant::now();
        let resp = client.get(&url).send().await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(resp.status() == 200, "cold call: {}", resp.status());
        let after = step_sums(ctx, tier).await?;
        let mut steps: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        steps[0] = ms - GATEWAY_STEPS.iter().map(|i| steps[*i]).sum::<f64>();
        for (sum, step) in sums.iter_mut().zip(&steps) {
            *sum += step;
        }
        times.push(ms);
    }
    let steps = sums.iter().map(|s| s / n as f64).collect();
    Ok(Tier { times, steps })
}

/// The sums (ms) of the [`STEPS`] series for `tier` now (0 for the first, and for a series
/// not yet written).
async fn step_sums(ctx: &Ctx, tier: &str) -> anyhow::Result<Vec<f64>> {
    let gateway = ferry_tests::http_client()
        .get(ctx.stack.gateway_url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let provider = ctx.stack.provider.metrics().await;
    Ok(STEPS
        .iter()
        .map(|(place, series, _)| {
            let text = if *place == "gateway" {
                &gateway
            } else {
                &provider
            };
            let series = series.replace("TIER", tier);
            (!series.is_empty())
                .then(|| sample(text, &series))
                .flatten()
                .map_or(0.0, |seconds| seconds * 1000.0)
        })
        .collect())
}

/// The figures and the section of the report.
fn figures(ctx: &mut Ctx, frozen: &Tier, stopped: &Tier, raw: &[f64]) {
    let (f50, f99) = (median(&frozen.times), quantile(&frozen.times, 0.99));
    let (s50, s99) = (median(&stopped.times), quantile(&stopped.times, 0.99));
    let (r50, r99) = (median(raw), quantile(raw, 0.99));
    let n = frozen.times.len();
    ctx.figure(Figure {
        id: "P6",
        name: "frozen → first 200, median".into(),
        value: f50,
        unit: "ms",
        goal: Goal::AtMost(50.0),
        baseline: format!("stopped {s50:.0} ms, raw docker start {r50:.0} ms"),
        raw: format!("frozen ms [{}]", list(&frozen.times)),
    });
    ctx.figure(Figure {
        id: "P6",
        name: "frozen → first 200, p99".into(),
        value: f99,
        unit: "ms",
        goal: Goal::AtMost(100.0),
        baseline: format!("stopped {s99:.0} ms, raw docker start {r99:.0} ms"),
        raw: format!("p99 of {n} = the slowest"),
    });
    ctx.figure(Figure {
        id: "P6",
        name: "stopped → first 200 ÷ raw docker start, medians".into(),
        value: s50 / r50,
        unit: "",
        goal: Goal::AtMost(1.10),
        baseline: format!("raw {r50:.0} ms (gateway {s50:.0} ms)"),
        raw: format!(
            "gateway ms [{}], raw ms [{}]",
            list(&stopped.times),
            list(raw)
        ),
    });
    ctx.figure(Figure {
        id: "P6",
        name: "stopped → first 200 ÷ raw docker start, p99".into(),
        value: s99 / r99,
        unit: "",
        goal: Goal::AtMost(1.10),
        baseline: format!("raw {r99:.0} ms (gateway {s99:.0} ms)"),
        raw: format!("p99 of {} = the slowest", stopped.times.len()),
    });
    let mut table =
        String::from("| where | step | frozen, mean ms | stopped, mean ms |\n|---|---|---|---|\n");
    for (i, (place, _, what)) in STEPS.iter().enumerate() {
        table.push_str(&format!(
            "| {place} | {what} | {:.1} | {:.1} |\n",
            frozen.steps[i], stopped.steps[i]
        ));
    }
    ctx.section(
        "P6 cold start",
        format!(
            "Frozen, {n} times: scale `{FROZEN}` to 0 through the provider, wait until its one \
             container is paused (after the 5 s `freeze_grace`) and 1.5 s more (the gateway's \
             endpoint cache expires), then time `GET /function/{FROZEN}` through the gateway \
             until its 200. Stopped, {} times: the same with `{STOPPED}` \
             (`com.ferry.scale.zero.tiers=stop`), waiting until its container has exited. \
             Baseline, as many times: a twin of `{STOPPED}`'s container (created from its \
             inspected configuration: same image, environment, functions network, published \
             ports, `init` and security options; only the test label), SIGKILLed, then \
             `docker start`, read its published port, poll `GET /` every 10 ms until 200.\n\n\
             - frozen ms: {}\n- stopped ms: {}\n- raw ms: {}\n\n\
             Where the time goes, between the call's arrival and its 200 (means over the \
             calls; the provider's steps are part of the gateway's scale request):\n\n{table}\n\
             Skipped or done in parallel since the first wave: the gateway no longer reads \
             the function's status for `com.openfaas.scale.min` before scaling (the \
             provider applies it under `fromZero`, which also makes the scale conditional); \
             a call whose cached list says zero replicas scales before listing; the provider \
             unpauses before listing containers and answers with the thawed replica's \
             address, so the gateway probes at once instead of listing again; a thaw writes \
             the desired state once (not twice) and skips the reconcile.\n",
            stopped.times.len(),
            list(&frozen.times),
            list(&stopped.times),
            list(raw)
        ),
    );
}

/// Scales `name` to zero and waits until its one container is in `state` (paused or
/// exited), then until the gateway's list of it has expired.
async fn to_zero(ctx: &Ctx, name: &str, state: ContainerSummaryStateEnum) -> anyhow::Result<()> {
    let code = ctx.stack.provider.scale(name, 0).await;
    anyhow::ensure!(code == 202, "scaling {name} to 0: {code}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = function_containers(&ctx.stack.guard, name).await;
        let status = ctx.stack.provider.status(name).await;
        if matches!(all.as_slice(), [only] if only.state == Some(state))
            && status.is_some_and(|s| s.replicas == 0 && s.available_replicas == 0)
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} did not reach zero ({state}) in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(())
}

/// `docker start` of a killed twin of `parked`'s container until its first 200, `n` times (ms).
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

/// Creates a container configured like `parked`'s replica (not started), labelled for the
/// test only, so the provider neither counts nor removes it. Returns its id.
async fn twin(ctx: &Ctx) -> anyhow::Result<String> {
    let guard = &ctx.stack.guard;
    let docker = guard.docker();
    let replica = function_containers(guard, STOPPED)
        .await
        .into_iter()
        .find_map(|c| c.id)
        .with_context(|| format!("no container of {STOPPED} to copy"))?;
    let inspected = docker.inspect_container(&replica, None).await?;
    let config = inspected
        .config
        .with_context(|| format!("{STOPPED}'s container has no configuration"))?;
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
