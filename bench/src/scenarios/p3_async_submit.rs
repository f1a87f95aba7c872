//! P3: async submissions, closed loop: `POST /async-function/echo` answered `202` (each after
//! the JetStream ack), with no worker taking calls meanwhile (the queue is purged afterwards);
//! the figure is 202s per second ÷ P1's gateway RPS.

use hyper::Method;

use super::{CONCURRENCY, Ctx, list, p1_rate};
use crate::load::{Spec, closed_loop};
use crate::report::{Figure, Goal};
use crate::stats::median;
use crate::sysinfo::cpu_per_op_text;

/// The async submission every scenario sends: a small JSON body and a callback URL.
pub(super) fn submission(ctx: &Ctx, function: &str) -> Spec {
    let mut spec = Spec::get(
        ctx.stack
            .gateway_url(&format!("/async-function/{function}")),
    )
    .header("x-callback-url", &ctx.stack.receiver.url("/done"))
    .header("content-type", "application/json");
    spec.method = Method::POST;
    spec.body = bytes::Bytes::from_static(b"{\"hello\":\"world\"}");
    spec.expect = 202;
    spec
}

/// Runs P3.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let p1 = p1_rate(ctx, "P3")?;
    ctx.stack.stop_worker();
    let spec = submission(ctx, "echo");
    closed_loop(&ctx.client, &spec, CONCURRENCY, ctx.warmup(), None).await;
    ctx.stack.purge_calls().await?;
    let (mut rates, mut lines, mut cpu) = (Vec::new(), Vec::new(), String::new());
    for r in 0..ctx.repeats() {
        let meter = ctx.cpu_meter().await;
        let run = closed_loop(&ctx.client, &spec, CONCURRENCY, ctx.run_len(), None).await;
        cpu = cpu_per_op_text(&meter.finish(), run.rate(), "submission");
        lines.push(format!("- repeat {}: {}", r + 1, run.summary()));
        rates.push(run.rate());
        ctx.stack.purge_calls().await?;
    }
    ctx.read_rss("after P3");
    let rate = median(&rates);
    ctx.p3_submit_rps = Some(rate);
    ctx.figure(Figure {
        id: "P3",
        name: "async 202s/s ÷ P1 gateway RPS".into(),
        value: rate / p1,
        unit: "",
        goal: Goal::AtLeast(1.0),
        baseline: format!("P1 gateway {p1:.0} /s (202s {rate:.0} /s)"),
        raw: format!("202s /s [{}], {CONCURRENCY} callers", list(&rates)),
    });
    ctx.section(
        "P3 async submission",
        format!(
            "Closed loop, {CONCURRENCY} connections, `POST /async-function/echo` with \
             `X-Callback-Url` and a 17-byte JSON body; a 202 counts once JetStream acknowledged \
             the call and the gateway wrote its status record. No queue-worker runs meanwhile \
             (the calls stream is purged between repeats), so the figure is the gateway's and \
             NATS's submission capacity. {:.0} s warm-up, {} repeats of {:.1} s.\n\n{}\n\nCPU \
             during the last repeat: {cpu}.\n",
            ctx.warmup().as_secs_f64(),
            ctx.repeats(),
            ctx.run_len().as_secs_f64(),
            lines.join("\n")
        ),
    );
    ctx.stack.start_worker(64).await;
    Ok(())
}
