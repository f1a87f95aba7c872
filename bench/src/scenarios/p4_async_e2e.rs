//! P4: async end to end at a constant submission rate (half P1's gateway RPS, lowered to 90 %
//! of what the async path completed in the warm-up if that was less, so the backlog can stay
//! flat): submitted → the queue-worker runs `echo` at its replica → the callback arrives.
//! Figures: completions per second ÷ P1's gateway RPS, NATS messages per completed call, and
//! calls lost (accepted, never called back).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::p3_async_submit::submission;
use super::{Ctx, list, p1_rate};
use crate::load::open_loop;
use crate::plot::{Series, line_chart};
use crate::report::{Figure, Goal};
use crate::stats::{median, slope};
use crate::sysinfo::cpu_per_op_text;

/// What the phases of P4 share: the ids accepted so far, the report's lines, and the
/// callbacks counted before P4 began.
struct Progress {
    accepted: HashSet<String>,
    lines: Vec<String>,
    before_all: usize,
}

/// The measured repeats: completions per second, NATS messages in/out per completed call,
/// CPU during the last repeat, and its samples.
struct Measured {
    completion_rates: Vec<f64>,
    per_call: Vec<(f64, f64)>,
    cpu: String,
    plot: Vec<(f64, u64, u64)>,
}

/// Runs P4.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let p1 = p1_rate(ctx, "P4")?;
    let offered = 0.5 * p1;
    if ctx.stack.worker_pid().is_none() {
        ctx.stack.start_worker(64).await;
    }
    let nonce = std::process::id();
    let mut progress = Progress {
        accepted: HashSet::new(),
        lines: Vec::new(),
        before_all: ctx.stack.receiver.count(),
    };
    let rate = warm_up(ctx, offered, nonce, &mut progress).await;
    let measured = repeats(ctx, rate, nonce, &mut progress).await?;
    // Drain: every accepted call must come back.
    let drain_start = Instant::now();
    let want = progress.before_all + progress.accepted.len();
    let limit = Duration::from_secs(if ctx.quick { 30 } else { 90 });
    while ctx.stack.receiver.count() < want && drain_start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = drain_start.elapsed().as_secs_f64();
    let returned: HashSet<String> = ctx
        .stack
        .receiver
        .received()
        .iter()
        .map(|c| c.header("x-call-id").to_string())
        .collect();
    let accepted = &progress.accepted;
    let lost = accepted.iter().filter(|id| !returned.contains(*id)).count();
    ctx.read_rss("after P4");
    figures(ctx, p1, rate, &measured);
    ctx.figure(Figure {
        id: "P4",
        name: "lost calls (accepted, no callback)".into(),
        value: lost as f64,
        unit: "calls",
        goal: Goal::AtMost(0.0),
        baseline: format!("{} accepted", accepted.len()),
        raw: format!(
            "{lost} of {} missing after a {drained:.1} s drain",
            accepted.len()
        ),
    });
    describe(
        ctx,
        (p1, offered, rate),
        &measured.cpu,
        &progress.lines,
        limit,
    );
    plot(ctx, &measured.plot);
    Ok(())
}

/// The warm-up runs at the offered rate and doubles as a capacity probe: when fewer calls
/// complete than are offered, the measured repeats run at 90 % of what completed, so the
/// backlog can stay flat. Returns the rate of the repeats, once the warm-up's backlog drained.
async fn warm_up(ctx: &Ctx, offered: f64, nonce: u32, progress: &mut Progress) -> f64 {
    let prefix = format!("p4-{nonce}-w");
    let warm = window(ctx, offered, ctx.warmup(), &prefix, &mut progress.accepted).await;
    let rate = if warm.0 < 0.95 * offered {
        0.9 * warm.0
    } else {
        offered
    };
    progress.lines.push(format!(
        "- warm-up at {offered:.0} /s: {}; completions {:.0} /s → measured repeats at {rate:.0} /s",
        warm.1, warm.0
    ));
    let settle = Instant::now();
    while (ctx.stack.queued_calls().await > 0
        || ctx.stack.receiver.count() < progress.before_all + progress.accepted.len())
        && settle.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress.lines.push(format!(
        "- warm-up backlog drained in {:.1} s",
        settle.elapsed().as_secs_f64()
    ));
    rate
}

/// The measured repeats at `rate`.
async fn repeats(
    ctx: &mut Ctx,
    rate: f64,
    nonce: u32,
    progress: &mut Progress,
) -> anyhow::Result<Measured> {
    let mut m = Measured {
        completion_rates: Vec::new(),
        per_call: Vec::new(),
        cpu: String::new(),
        plot: Vec::new(),
    };
    for r in 1..=ctx.repeats() {
        let len = ctx.run_len();
        let meter = ctx.cpu_meter().await;
        let nats_before = ctx.stack.nats_messages().await?;
        let prefix = format!("p4-{nonce}-{r}");
        let (done_rate, summary, samples) = {
            let start = Instant::now();
            let count0 = ctx.stack.receiver.count();
            let mut spec = submission(ctx, "echo");
            spec.call_id_prefix = Some(prefix.clone());
            let (run, samples) = tokio::join!(
                open_loop(&ctx.client, &spec, rate, len),
                sample(ctx, start, len)
            );
            let ids = run.ok_indices.iter().map(|i| format!("{prefix}-{i}"));
            progress.accepted.extend(ids);
            let in_window: Vec<&(f64, u64, u64)> = samples
                .iter()
                .filter(|s| s.0 <= len.as_secs_f64())
                .collect();
            let done = in_window
                .last()
                .map_or(0, |s| s.1)
                .saturating_sub(count0 as u64);
            let secs = in_window.last().map_or(1.0, |s| s.0).max(0.1);
            (done as f64 / secs, run.summary(), samples)
        };
        m.cpu = cpu_per_op_text(&meter.finish(), done_rate, "completion");
        let nats_after = ctx.stack.nats_messages().await?;
        let completed = (done_rate * len.as_secs_f64()).max(1.0);
        m.per_call.push((
            (nats_after.0 - nats_before.0) as f64 / completed,
            (nats_after.1 - nats_before.1) as f64 / completed,
        ));
        let backlog: Vec<(f64, f64)> = samples.iter().map(|s| (s.0, s.2 as f64)).collect();
        m.completion_rates.push(done_rate);
        progress.lines.push(format!(
            "- repeat {r}: submitted {summary}; callbacks {done_rate:.0} /s; backlog (calls \
             stream) {:.0} → {:.0}, trend {:+.0} /s",
            backlog.first().map_or(0.0, |b| b.1),
            backlog.last().map_or(0.0, |b| b.1),
            slope(&backlog),
        ));
        m.plot = samples;
    }
    Ok(m)
}

/// The completion rate and NATS messages figures.
fn figures(ctx: &mut Ctx, p1: f64, rate: f64, m: &Measured) {
    let completions = median(&m.completion_rates);
    ctx.figure(Figure {
        id: "P4",
        name: format!("async completions/s ÷ P1 gateway RPS (at {rate:.0} /s)"),
        value: completions / p1,
        unit: "",
        goal: Goal::AtLeast(0.5),
        baseline: format!("P1 gateway {p1:.0} /s (completions {completions:.0} /s)"),
        raw: format!("completions /s [{}]", list(&m.completion_rates)),
    });
    let ins: Vec<f64> = m.per_call.iter().map(|p| p.0).collect();
    let outs: Vec<f64> = m.per_call.iter().map(|p| p.1).collect();
    ctx.figure(Figure {
        id: "P4",
        name: "NATS messages per completed call, in / out (counted by nats-server)".into(),
        value: median(&ins),
        unit: "msgs",
        goal: Goal::Report,
        baseline: format!("out {:.1}", median(&outs)),
        raw: format!("in [{}], out [{}]", list(&ins), list(&outs)),
    });
}

/// The report's section: how P4 runs, its lines, the CPU and the ceiling P3 sets.
fn describe(
    ctx: &mut Ctx,
    (p1, offered, rate): (f64, f64, f64),
    cpu: &str,
    lines: &[String],
    limit: Duration,
) {
    let ceiling = ctx.p3_submit_rps.map_or_else(String::new, |p3| {
        format!(
            "\n\nA ceiling from this run's own figures: every completion includes one \
             submission (P3: {p3:.0} /s when the machine does nothing else) on the same cores \
             as the calls, so completions/s ÷ P1 ≤ P3 ÷ P1 = {:.2} even if the worker, the \
             function, NATS's work for it and the callback cost nothing.",
            p3 / p1
        )
    });
    let workers = match ctx.stack.worker_pids().len() {
        1 => "one queue-worker".to_string(),
        n => format!("{n} queue-workers"),
    };
    ctx.section(
        "P4 async end to end",
        format!(
            "Open loop of `POST /async-function/echo` with unique `X-Call-Id`s: a warm-up at \
             {offered:.0} /s (half of P1's gateway rate), then the repeats at {rate:.0} /s (the \
             same, or 90 % of the completion rate the warm-up reached if that was lower); {workers} (`max_inflight` 64 each) invoke `echo` \
             at its replica and posts each result to a callback receiver in this process. \
             Completions per second are the callbacks counted during each submission window; the \
             backlog is the calls stream's message count sampled every 250 ms (trend = least \
             squares slope). JetStream operations per completed call: the messages nats-server \
             received from its clients (`in_msgs` of `/varz`: publishes, requests, replies, acks, \
             pull requests) and sent to them (`out_msgs`: replies, deliveries) during each repeat, \
             divided by the callbacks of that repeat. After the runs, every accepted id must come \
             back (drain of at most {}s). One {:.0} s warm-up run, then {} repeats of {:.1} s.\n\n{}\n\nCPU during the \
             last repeat: {cpu}.{ceiling}\n",
            limit.as_secs(),
            ctx.warmup().as_secs_f64(),
            ctx.repeats(),
            ctx.run_len().as_secs_f64(),
            lines.join("\n")
        ),
    );
}

/// The plot of the last repeat: callbacks per second and the backlog.
fn plot(ctx: &mut Ctx, plot: &[(f64, u64, u64)]) {
    let rates = |f: &dyn Fn(&(f64, u64, u64)) -> f64| -> Vec<(f64, f64)> {
        plot.windows(2)
            .map(|w| (w[1].0, (f(&w[1]) - f(&w[0])) / (w[1].0 - w[0].0).max(1e-3)))
            .collect()
    };
    let svg = line_chart(
        "P4 async completions over time (last repeat)",
        "seconds",
        "per second / calls",
        &[
            Series {
                name: "callbacks / s".into(),
                points: rates(&|s| s.1 as f64),
            },
            Series {
                name: "backlog (calls queued)".into(),
                points: plot.iter().map(|s| (s.0, s.2 as f64)).collect(),
            },
        ],
        false,
    );
    ctx.plot(
        "p4-throughput.svg",
        "P4 callbacks over time and backlog",
        svg,
    );
}

/// One open-loop run at `rate` for `len` with call ids `<prefix>-<n>` (added to `accepted`);
/// returns the callbacks per second during it and the submission summary.
async fn window(
    ctx: &Ctx,
    rate: f64,
    len: Duration,
    prefix: &str,
    accepted: &mut HashSet<String>,
) -> (f64, String) {
    let start = Instant::now();
    let count0 = ctx.stack.receiver.count();
    let mut spec = submission(ctx, "echo");
    spec.call_id_prefix = Some(prefix.to_string());
    let run = open_loop(&ctx.client, &spec, rate, len).await;
    let done = ctx.stack.receiver.count().saturating_sub(count0);
    accepted.extend(run.ok_indices.iter().map(|i| format!("{prefix}-{i}")));
    (
        done as f64 / start.elapsed().as_secs_f64().max(0.1),
        run.summary(),
    )
}

/// Every 250 ms until `len` plus 1 s: (seconds since `start`, callbacks so far, calls
/// queued).
async fn sample(ctx: &Ctx, start: Instant, len: Duration) -> Vec<(f64, u64, u64)> {
    let js = ctx.stack.jetstream().await;
    let mut out = Vec::new();
    while start.elapsed() < len + Duration::from_secs(1) {
        let queued = ferry_tests::worker::stored_calls(&js).await;
        out.push((
            start.elapsed().as_secs_f64(),
            ctx.stack.receiver.count() as u64,
            queued,
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}
