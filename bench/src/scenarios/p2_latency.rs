//! P2: sync latency at half of P1's gateway rate, at a constant rate (open loop; latency from
//! each request's intended send time, so no coordinated omission), gateway vs direct; the
//! figures are the differences of the medians of p50 and of p99.

use super::{Ctx, list, p1_rate};
use crate::load::{Run, Spec, open_loop};
use crate::plot::{Series, cdf, line_chart};
use crate::report::{Figure, Goal};
use crate::stats::{self, median};

/// Runs P2.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let rate = 0.5 * p1_rate(ctx, "P2")?;
    let gateway = Spec::get(ctx.stack.gateway_url("/function/echo"));
    let direct = Spec::get(format!("{}/", ctx.stack.direct_url("echo").await?));
    for spec in [&gateway, &direct] {
        open_loop(&ctx.client, spec, rate, ctx.warmup()).await;
    }
    let mut gw_hist = stats::histogram();
    let mut direct_hist = stats::histogram();
    let (mut p50, mut p99, mut lines) = (
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        Vec::new(),
    );
    for r in 0..ctx.repeats() {
        let gw = open_loop(&ctx.client, &gateway, rate, ctx.run_len()).await;
        let d = open_loop(&ctx.client, &direct, rate, ctx.run_len()).await;
        lines.push(format!(
            "- repeat {}: gateway {}; direct {}",
            r + 1,
            gw.summary(),
            d.summary()
        ));
        for (i, run) in [&gw, &d].into_iter().enumerate() {
            p50[i].push(run.quantile_us(0.5));
            p99[i].push(run.quantile_us(0.99));
        }
        add(&mut gw_hist, &gw);
        add(&mut direct_hist, &d);
    }
    ctx.read_rss("after P2");
    figures(ctx, rate, &p50, &p99);
    ctx.section(
        "P2 sync latency at a constant rate",
        format!(
            "Open loop at {rate:.0} requests/s (half of P1's gateway rate) to each target, \
             latency measured from each request's intended send time; {:.0} s warm-up, {} \
             repeats of {:.1} s, gateway and direct interleaved; figures are differences of the \
             medians over the repeats.\n\n{}\n",
            ctx.warmup().as_secs_f64(),
            ctx.repeats(),
            ctx.run_len().as_secs_f64(),
            lines.join("\n")
        ),
    );
    let svg = line_chart(
        &format!("P2 latency CDF at {rate:.0} /s (all repeats)"),
        "latency from intended send time (µs, log)",
        "% of requests",
        &[
            Series {
                name: "gateway".into(),
                points: cdf(&gw_hist),
            },
            Series {
                name: "direct".into(),
                points: cdf(&direct_hist),
            },
        ],
        true,
    );
    ctx.plot("p2-latency-cdf.svg", "P2 latency distribution", svg);
    Ok(())
}

fn add(into: &mut hdrhistogram::Histogram<u64>, run: &Run) {
    into.add(&run.latency).expect("same histogram bounds");
}

/// The Δp50 and Δp99 figures from the repeats' quantiles (`[gateway, direct]`).
fn figures(ctx: &mut Ctx, rate: f64, p50: &[Vec<f64>; 2], p99: &[Vec<f64>; 2]) {
    let (d50, d99) = (
        median(&p50[0]) - median(&p50[1]),
        median(&p99[0]) - median(&p99[1]),
    );
    ctx.figure(Figure {
        id: "P2",
        name: format!("Δp50 vs direct at {rate:.0} /s"),
        value: d50,
        unit: "µs",
        goal: Goal::AtMost(100.0),
        baseline: format!("direct p50 {:.0} µs", median(&p50[1])),
        raw: format!(
            "p50 µs gateway [{}], direct [{}]",
            list(&p50[0]),
            list(&p50[1])
        ),
    });
    ctx.figure(Figure {
        id: "P2",
        name: format!("Δp99 vs direct at {rate:.0} /s"),
        value: d99,
        unit: "µs",
        goal: Goal::AtMost(1000.0),
        baseline: format!("direct p99 {:.0} µs", median(&p99[1])),
        raw: format!(
            "p99 µs gateway [{}], direct [{}]",
            list(&p99[0]),
            list(&p99[1])
        ),
    });
}
