//! P9: calls waiting for a retry hold up nothing. The p50 of `echo`'s async calls (submission
//! to callback) while 10 000 calls of `busy` (a function that
//! always answers `429` with `Retry-After: 600`) wait for their retry on the same queue, ÷ the
//! same p50 without them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use ferry_proto::jetstream::{CALLS_STREAM, DEFAULT_QUEUE, consumer_name};
use serde_json::json;

use super::p3_async_submit::submission;
use super::{Ctx, list};
use crate::load::open_loop;
use crate::report::{Figure, Goal};
use crate::stats::median;

/// Waiting calls of `busy` (fewer with `--quick`).
const WAITING: usize = 10_000;
/// Rate of the measured `echo` calls.
const RATE: f64 = 50.0;

/// Runs P9.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.stack
        .deploy_spec(json!({"service": "busy", "envVars": {"ECHO_STATUS": "429"}}))
        .await?;
    ctx.stack.provider.wait_available("busy", 1).await;
    if ctx.stack.worker_pid().is_none() {
        ctx.stack.start_worker(64).await;
    }
    let nonce = std::process::id();
    let before = latencies(ctx, &format!("p9-{nonce}-a")).await?;

    let waiting = if ctx.quick { 2_000 } else { WAITING };
    let mut busy = submission(ctx, "busy").header("x-echo-header", "Retry-After: 600");
    busy.call_id_prefix = Some(format!("p9-{nonce}-busy"));
    let rate = 1_000.0;
    let run = open_loop(
        &ctx.client,
        &busy,
        rate,
        Duration::from_secs_f64(waiting as f64 / rate),
    )
    .await;
    let submitted = run.ok_indices.len();
    let settled = Instant::now();
    let js = ctx.stack.jetstream().await;
    loop {
        let stream = js.get_stream(CALLS_STREAM).await?;
        let mut consumer: PullConsumer =
            stream
                .get_consumer(&consumer_name(DEFAULT_QUEUE))
                .await
                .map_err(|e| anyhow::anyhow!("the queue's consumer: {e}"))?;
        let info = consumer.info().await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        anyhow::ensure!(
            settled.elapsed() < Duration::from_secs(300),
            "the busy calls were not all tried within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tried_in = settled.elapsed().as_secs_f64();
    let after = latencies(ctx, &format!("p9-{nonce}-b")).await?;
    ctx.stack.purge_calls().await?;

    let (p50_before, p50_after) = (median(&before), median(&after));
    ctx.figure(Figure {
        id: "P9",
        name: format!("echo async p50 with {submitted} calls waiting for a retry ÷ without"),
        value: p50_after / p50_before,
        unit: "",
        goal: Goal::AtMost(1.2),
        baseline: format!("p50 without {p50_before:.2} ms, with {p50_after:.2} ms"),
        raw: format!(
            "{} calls each; ms without [{}], with [{}]",
            before.len(),
            list(&sample(&before)),
            list(&sample(&after))
        ),
    });
    ctx.section(
        "P9 waiting retries",
        format!(
            "`echo`'s async calls at {RATE:.0} /s for {:.0} s, their latency from just before \
             each submission to its callback's arrival at the receiver in this process; \
             then {submitted} calls of `busy` (`ECHO_STATUS=429`, `Retry-After: 600` via \
             `X-Echo-Header`) submitted at {rate:.0} /s, all tried once and waiting for their \
             retry {tried_in:.1} s later (the queue's consumer has nothing pending or \
             unacknowledged: the waiting calls are message schedules, not pending messages); \
             then `echo` again. p50 {p50_before:.2} ms without, {p50_after:.2} ms with.\n",
            ctx.run_len().as_secs_f64()
        ),
    );
    Ok(())
}

/// The latencies (ms) of `echo` calls sent at [`RATE`] for one run length with call ids
/// `<prefix>-<n>`: from just before each submission to its callback's arrival.
async fn latencies(ctx: &Ctx, prefix: &str) -> anyhow::Result<Vec<f64>> {
    let client = ferry_tests::http_client();
    let callback = ctx.stack.receiver.url(&format!("/{prefix}"));
    let n = (RATE * ctx.run_len().as_secs_f64()) as usize;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    let mut sent = HashMap::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        ticks.tick().await;
        let id = format!("{prefix}-{i}");
        sent.insert(id.clone(), Instant::now());
        let request = client
            .post(ctx.stack.gateway_url("/async-function/echo"))
            .header("x-callback-url", &callback)
            .header("x-call-id", &id)
            .body("{}")
            .send();
        tasks.push(tokio::spawn(request));
    }
    for task in tasks {
        anyhow::ensure!(task.await??.status() == 202, "a submission was refused");
    }
    let path = format!("/{prefix}");
    let started = Instant::now();
    loop {
        let arrived = ctx.stack.receiver.received();
        let done: Vec<f64> = arrived
            .iter()
            .filter(|c| c.uri == path)
            .filter_map(|c| {
                let at = sent.get(c.header("x-call-id"))?;
                Some(c.at.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        if done.len() >= n {
            return Ok(done);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {n} callbacks after a minute",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Percentiles 10, 50, 90 and 99 of `v`.
fn sample(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    [0.1, 0.5, 0.9, 0.99]
        .iter()
        .map(|q| v[((v.len() - 1) as f64 * q) as usize])
        .collect()
}
