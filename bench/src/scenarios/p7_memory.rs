//! P7: peak RSS (`VmHWM` from `/proc/<pid>/status`) of the gateway and of the queue-worker,
//! read after each of P1–P4 (the release binaries run as their own processes).

use super::Ctx;
use crate::report::{Figure, Goal};

/// Runs P7 (reads what P1 and P4 recorded).
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    for process in ["gateway", "queue-worker"] {
        let readings: Vec<&(&str, &str, f64)> = ctx.rss.iter().filter(|r| r.0 == process).collect();
        let peak = readings.iter().map(|r| r.2).fold(f64::NAN, f64::max);
        let raw: Vec<String> = readings
            .iter()
            .map(|r| format!("{:.1} MiB {}", r.2, r.1))
            .collect();
        lines.push(format!("- {process}: {}", raw.join(", ")));
        ctx.figure(Figure {
            id: "P7",
            name: format!("peak RSS of the {process} during P1–P4"),
            value: peak,
            unit: "MiB",
            goal: Goal::AtMost(30.0),
            baseline: "limit 30 MiB".into(),
            raw: raw.join(", "),
        });
    }
    ctx.section(
        "P7 memory",
        format!(
            "`VmHWM` of the release `gateway` and `queue-worker` processes (peak resident set \
             since start), read after each of P1–P4, so the scenario that raised it shows. The \
             gateway runs from the start; the worker is restarted by P3 (it is stopped during \
             P3), so its readings after P4 cover P4 only.\n\n{}\n",
            lines.join("\n")
        ),
    );
    Ok(())
}
