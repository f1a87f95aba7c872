//! P8: growth. P3's enqueue latency (p50/p99 of `POST /async-function/echo` → 202) with an
//! empty calls stream vs 100 000 calls already queued (published straight to the stream,
//! pipelined, while no worker runs); and `GET /system/functions` through the gateway with
//! 1 000 functions deployed at `com.openfaas.scale.min=0` (no container each).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt;
use serde_json::json;

use super::p3_async_submit::submission;
use super::{CONCURRENCY, Ctx, list};
use crate::load::{Spec, closed_loop};
use crate::report::{Figure, Goal};
use crate::stats::{median, quantile};

/// Calls per measured enqueue run.
const CALLS_PER_RUN: u64 = 5000;
/// Measured enqueue runs per state (empty, queued): the empty and the queued runs cannot be
/// interleaved (filling takes seconds), so more of them steady the medians against drift.
const RUNS: usize = 5;

/// p50s and p99s (µs) of [`CALLS_PER_RUN`] submissions per repeat; with `purge`, the calls
/// stream is emptied before each repeat.
async fn enqueue_latencies(
    ctx: &Ctx,
    spec: &Spec,
    purge: bool,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        if purge {
            ctx.stack.purge_calls().await?;
        }
        let run = closed_loop(
            &ctx.client,
            spec,
            CONCURRENCY,
            Duration::from_secs(60),
            Some(CALLS_PER_RUN),
        )
        .await;
        p50.push(run.quantile_us(0.5));
        p99.push(run.quantile_us(0.99));
    }
    Ok((p50, p99))
}

/// Runs P8.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let backlog: u64 = 100_000;
    ctx.stack.stop_worker();
    ctx.stack.purge_calls().await?;
    let spec = submission(ctx, "echo");
    closed_loop(&ctx.client, &spec, CONCURRENCY, ctx.warmup(), None).await;
    let empty = enqueue_latencies(ctx, &spec, true).await?;
    ctx.stack.purge_calls().await?;
    let fill_start = Instant::now();
    fill(ctx, backlog).await?;
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let queued = ctx.stack.queued_calls().await;
    let full = enqueue_latencies(ctx, &spec, false).await?;
    ctx.stack.purge_calls().await?;
    ctx.stack.start_worker(64).await;
    for (i, what) in ["p50", "p99"].into_iter().enumerate() {
        let (e, f) = if i == 0 {
            (&empty.0, &full.0)
        } else {
            (&empty.1, &full.1)
        };
        ctx.figure(Figure {
            id: "P8",
            name: format!("enqueue {what}, 100 000 queued ÷ empty"),
            value: median(f) / median(e),
            unit: "",
            goal: Goal::AtMost(1.2),
            baseline: format!("empty {:.0} µs (queued {:.0} µs)", median(e), median(f)),
            raw: format!("µs empty [{}], queued [{}]", list(e), list(f)),
        });
    }

    let functions = if ctx.quick { 100 } else { 1000 };
    let (deploy_secs, times, listed) = listing(ctx, functions).await?;
    ctx.figure(Figure {
        id: "P8",
        name: format!("GET /system/functions with {functions} functions, median"),
        value: median(&times),
        unit: "ms",
        goal: Goal::Below(50.0),
        baseline: format!("{listed} functions listed"),
        raw: format!(
            "ms [{}], p99 {:.1} ms",
            list(&times),
            quantile(&times, 0.99)
        ),
    });
    ctx.section(
        "P8 growth",
        format!(
            "Enqueue latency: closed loop of {CONCURRENCY} callers sending {CALLS_PER_RUN} async \
             calls per repeat with no worker running; {} repeats with the calls stream purged \
             before each (empty), then {backlog} calls published straight to the calls stream \
             (pipelined, {fill_secs:.1} s; {queued} messages queued afterwards) and {} more \
             repeats. Listing: {functions} functions deployed through the gateway at \
             `com.openfaas.scale.min=0` ({deploy_secs:.1} s), then `GET /system/functions` \
             through the gateway 15 times (median).\n\n- enqueue p50 µs: empty [{}], queued [{}]\n- \
             enqueue p99 µs: empty [{}], queued [{}]\n- list ms: [{}]\n",
            RUNS,
            RUNS,
            list(&empty.0),
            list(&full.0),
            list(&empty.1),
            list(&full.1),
            list(&times)
        ),
    );
    Ok(())
}

/// Publishes `n` small calls for `echo` to the calls stream, 1 000 acks in flight at a time.
async fn fill(ctx: &Ctx, n: u64) -> anyhow::Result<()> {
    let js = ctx.stack.jetstream().await;
    let function = ferry_proto::FunctionRef::parse("echo", &ferry_proto::Name::default_namespace())
        .context("the function name")?;
    let subject =
        ferry_proto::jetstream::call_subject(ferry_proto::jetstream::DEFAULT_QUEUE, &function);
    let payload = bytes::Bytes::from(
        json!({"Method": "POST", "Function": "echo", "Body": "e30="}).to_string(),
    );
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(1000);
        let mut acks = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            acks.push(js.publish(subject.clone(), payload.clone()).await?);
        }
        for ack in acks {
            ack.await?;
        }
        sent += batch;
    }
    Ok(())
}

/// Deploys `functions` idle functions, then times `GET /system/functions` 15 times: the
/// seconds the deploys took, the listing times (ms) and how many functions the last listed.
async fn listing(ctx: &Ctx, functions: usize) -> anyhow::Result<(f64, Vec<f64>, usize)> {
    let deploy_start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..functions)
        .map(|i| {
            let stack = &ctx.stack;
            async move {
                stack
                    .deploy(&format!("idle-{i}"), json!({"com.openfaas.scale.min": "0"}))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let deploy_secs = deploy_start.elapsed().as_secs_f64();
    let client = ferry_tests::http_client();
    let url = ctx.stack.gateway_url("/system/functions");
    let (mut times, mut listed) = (Vec::new(), 0);
    for _ in 0..15 {
        let start = Instant::now();
        let resp = client.get(&url).send().await?;
        anyhow::ensure!(
            resp.status() == 200,
            "GET /system/functions: {}",
            resp.status()
        );
        let body: serde_json::Value = resp.json().await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        listed = body.as_array().map_or(0, Vec::len);
    }
    Ok((deploy_secs, times, listed))
}
