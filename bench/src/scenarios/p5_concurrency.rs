//! P5: worker concurrency. Calls to `echo` that sleep 100 ms (`X-Echo-Sleep-Ms: 100`) are
//! queued first, then a queue-worker with `max_inflight` 1, 8 and 64 works through them; the
//! figure is completions per second ÷ (max_inflight / 0.1 s).

use std::time::{Duration, Instant};

use super::p3_async_submit::submission;
use super::{CONCURRENCY, Ctx, list};
use crate::load::closed_loop;
use crate::report::{Figure, Goal};
use crate::stats::median;
use crate::sysinfo::cpu_text;

/// The function's run time.
const SLEEP: Duration = Duration::from_millis(100);

/// Runs P5.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    let repeats = if ctx.quick { 1 } else { ctx.repeats() };
    let seconds = if ctx.quick { 1.0 } else { 3.0 };
    for inflight in [1usize, 8, 64] {
        let ideal = inflight as f64 / SLEEP.as_secs_f64();
        let calls = (ideal * seconds).round() as u64 + inflight as u64;
        let mut rates = Vec::new();
        let mut cpu = String::new();
        for r in 0..repeats {
            ctx.stack.stop_worker();
            ctx.stack.purge_calls().await?;
            let spec = submission(ctx, "echo").header("x-echo-sleep-ms", "100");
            let queued = closed_loop(
                &ctx.client,
                &spec,
                CONCURRENCY,
                Duration::from_secs(120),
                Some(calls),
            )
            .await;
            anyhow::ensure!(
                queued.errors == 0,
                "P5 queueing failed: {}",
                queued.summary()
            );
            let before = ctx.stack.receiver.count();
            ctx.stack.start_worker(inflight).await;
            let meter = ctx.cpu_meter().await;
            let (first, last) = callbacks_span(ctx, before, calls).await;
            cpu = cpu_text(&meter.finish());
            let (Some(first), Some(last)) = (first, last) else {
                anyhow::bail!("P5: not all {calls} calls came back at max_inflight {inflight}");
            };
            // The first batch arrives at `first`; the remaining calls take until `last`.
            let span = (last - first).as_secs_f64().max(1e-3);
            let rate = (calls - inflight as u64) as f64 / span;
            lines.push(format!(
                "- max_inflight {inflight}, repeat {}: {calls} calls, {:.2} s from first to last \
                 callback = {rate:.1} /s (ideal {ideal:.0} /s)",
                r + 1,
                span
            ));
            rates.push(rate);
        }
        lines.push(format!("  CPU during the last repeat: {cpu}"));
        let rate = median(&rates);
        ctx.figure(Figure {
            id: "P5",
            name: format!("completions/s ÷ ideal at max_inflight {inflight}"),
            value: rate / ideal,
            unit: "",
            goal: Goal::AtLeast(0.9),
            baseline: format!("ideal {ideal:.0} /s ({rate:.1} /s)"),
            raw: format!("/s [{}]", list(&rates)),
        });
    }
    ctx.section(
        "P5 worker concurrency",
        format!(
            "For each `max_inflight`: the worker is stopped, the calls stream purged, \
             `max_inflight × 10 × {seconds:.0} s + max_inflight` async calls carrying \
             `X-Echo-Sleep-Ms: 100` are queued, then a worker with that `max_inflight` starts. \
             Rate = (calls − max_inflight) ÷ (last callback − first callback): the first batch \
             marks the start. {repeats} repeat(s) each.\n\n{}\n",
            lines.join("\n")
        ),
    );
    ctx.stack.stop_worker();
    ctx.stack.purge_calls().await?;
    ctx.stack.start_worker(64).await;
    Ok(())
}

/// When the first and the `calls`-th callback after the `before` counted so far arrived
/// (None: not within 120 s).
async fn callbacks_span(
    ctx: &Ctx,
    before: usize,
    calls: u64,
) -> (Option<Instant>, Option<Instant>) {
    let (mut first, mut last) = (None, None);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let done = (ctx.stack.receiver.count() - before) as u64;
        if done >= 1 && first.is_none() {
            first = Some(Instant::now());
        }
        if done >= calls {
            last = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (first, last)
}
