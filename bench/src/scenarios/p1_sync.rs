//! P1: closed-loop sync load on `echo` (watchdog in `http` mode) through the gateway and
//! straight to the replica's published port, with the same number of callers; the figure is
//! RPS(gateway) ÷ RPS(direct), as the median of the ratios of [`PAIRS`] interleaved pairs of
//! runs (a gateway run, then a direct run): on a shared machine the load of other processes
//! drifts over seconds, and a pair of adjacent runs sees nearly the same drift, so the
//! per-pair ratio is steadier than the ratio of the two medians (reported too).

use super::{CONCURRENCY, Ctx, list};
use crate::load::{Spec, closed_loop};
use crate::plot::{Series, cdf, line_chart};
use crate::report::{Figure, Goal};
use crate::stats::median;
use crate::sysinfo::cpu_per_op_text;

/// Interleaved pairs of measured runs (more than the suite's default repeats: the ratio is
/// the headline figure and the runs are short).
const PAIRS: usize = 5;

/// Runs P1.
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let gateway = Spec::get(ctx.stack.gateway_url("/function/echo"));
    let direct = Spec::get(format!("{}/", ctx.stack.direct_url("echo").await?));
    for spec in [&gateway, &direct] {
        closed_loop(&ctx.client, spec, CONCURRENCY, ctx.warmup(), None).await;
    }
    let (mut gw_rates, mut direct_rates, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gw_last, mut direct_last) = (None, None);
    let (mut gw_cpu, mut direct_cpu) = (String::new(), String::new());
    for r in 0..PAIRS {
        let meter = ctx.cpu_meter().await;
        let gw = closed_loop(&ctx.client, &gateway, CONCURRENCY, ctx.run_len(), None).await;
        gw_cpu = cpu_per_op_text(&meter.finish(), gw.rate(), "request");
        let meter = ctx.cpu_meter().await;
        let d = closed_loop(&ctx.client, &direct, CONCURRENCY, ctx.run_len(), None).await;
        direct_cpu = cpu_per_op_text(&meter.finish(), d.rate(), "request");
        lines.push(format!(
            "- pair {}: gateway {}; direct {}; ratio {:.2}",
            r + 1,
            gw.summary(),
            d.summary(),
            gw.rate() / d.rate()
        ));
        gw_rates.push(gw.rate());
        direct_rates.push(d.rate());
        gw_last = Some(gw);
        direct_last = Some(d);
    }
    let (gw, d) = (median(&gw_rates), median(&direct_rates));
    let ratios: Vec<f64> = gw_rates
        .iter()
        .zip(&direct_rates)
        .map(|(g, d)| g / d)
        .collect();
    ctx.p1_gateway_rps = Some(gw);
    ctx.read_rss("after P1");
    ctx.figure(Figure {
        id: "P1",
        name: "RPS(gateway) ÷ RPS(direct)".into(),
        value: median(&ratios),
        unit: "",
        goal: Goal::AtLeast(0.70),
        baseline: format!("direct {d:.0} /s (gateway {gw:.0} /s)"),
        raw: format!(
            "gateway /s [{}], direct /s [{}], per-pair ratios [{}] (ratio of the medians {:.2}), \
             {CONCURRENCY} callers",
            list(&gw_rates),
            list(&direct_rates),
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            gw / d
        ),
    });
    ctx.section(
        "P1 sync throughput",
        format!(
            "Closed loop, {CONCURRENCY} keep-alive connections, `GET /function/echo` (gateway) vs \
             `GET /` on the replica's published port (direct); {:.0} s warm-up each, then {} \
             interleaved pairs of {:.1} s runs; the figure is the median of the per-pair \
             ratios.\n\n{}\n\nCPU during the last \
             gateway run: {gw_cpu}.\n\nCPU during the last direct run: {direct_cpu}.\n",
            ctx.warmup().as_secs_f64(),
            PAIRS,
            ctx.run_len().as_secs_f64(),
            lines.join("\n")
        ),
    );
    if let (Some(g), Some(d)) = (gw_last, direct_last) {
        plots(ctx, &g, &d);
    }
    Ok(())
}

/// P1's throughput and latency plots, of the last pair (`g` through the gateway, `d` direct).
fn plots(ctx: &mut Ctx, g: &crate::load::Run, d: &crate::load::Run) {
    let series = |name: &str, run: &crate::load::Run| Series {
        name: name.to_string(),
        points: run.timeline.rates(),
    };
    let svg = line_chart(
        "P1 throughput over time (last repeat)",
        "seconds",
        "requests / s",
        &[series("gateway", g), series("direct", d)],
        false,
    );
    ctx.plot("p1-throughput.svg", "P1 throughput over time", svg);
    let svg = line_chart(
        "P1 latency CDF, closed loop (last repeat)",
        "latency (µs, log)",
        "% of requests",
        &[
            Series {
                name: "gateway".into(),
                points: cdf(&g.latency),
            },
            Series {
                name: "direct".into(),
                points: cdf(&d.latency),
            },
        ],
        true,
    );
    ctx.plot("p1-latency-cdf.svg", "P1 latency distribution", svg);
}
