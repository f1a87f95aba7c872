//! The results: each [`Figure`] with its target, the table printed on stdout and the
//! Markdown report (`target/bench/report.md`).

use std::fmt::Write as _;

/// What a figure must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// `value ≥ bound`.
    AtLeast(f64),
    /// `value ≤ bound`.
    AtMost(f64),
    /// `value < bound`.
    Below(f64),
    /// No target: a measurement reported for what it tells (e.g. a cost per operation).
    Report,
}

impl Goal {
    fn text(&self, unit: &str) -> String {
        match *self {
            Goal::AtLeast(b) => format!("≥ {}", value_text(b, unit)),
            Goal::AtMost(b) => format!("≤ {}", value_text(b, unit)),
            Goal::Below(b) => format!("< {}", value_text(b, unit)),
            Goal::Report => "–".to_string(),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Scenario id, `P1` … `P9`.
    pub id: &'static str,
    /// What is measured, e.g. `RPS(gateway) ÷ RPS(direct)`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit: `""` for a ratio, else `µs`, `ms`, `MiB`, `calls`, `/s`.
    pub unit: &'static str,
    /// The target.
    pub goal: Goal,
    /// What it is compared against, with that value.
    pub baseline: String,
    /// The raw numbers behind it.
    pub raw: String,
}

impl Figure {
    /// Whether the target is met (a `NaN` value never is).
    pub fn met(&self) -> bool {
        match self.goal {
            Goal::AtLeast(b) => self.value >= b,
            Goal::AtMost(b) => self.value <= b,
            Goal::Below(b) => self.value < b,
            Goal::Report => true,
        }
    }

    /// `met`, or `missed by <amount> (<percent> of the target)`.
    pub fn verdict(&self) -> String {
        if self.goal == Goal::Report {
            return "reported".to_string();
        }
        if self.met() {
            return "met".to_string();
        }
        if self.value.is_nan() {
            return "missed (not measured)".to_string();
        }
        let bound = match self.goal {
            Goal::AtLeast(b) | Goal::AtMost(b) | Goal::Below(b) => b,
            Goal::Report => return "reported".to_string(),
        };
        let gap = (self.value - bound).abs();
        let percent = if bound == 0.0 {
            String::new()
        } else {
            format!(" ({:.0} %)", 100.0 * gap / bound.abs())
        };
        format!("missed by {}{percent}", value_text(gap, self.unit))
    }
}

/// `value` with its unit, rounded for reading.
pub fn value_text(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "–".to_string();
    }
    match unit {
        "" => format!("{value:.2}"),
        "µs" | "calls" | "/s" => format!("{value:.0} {unit}"),
        _ => format!("{value:.1} {unit}"),
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// `key: value` lines (cores, CPU model, memory, kernel, load before and after).
    pub lines: Vec<(String, String)>,
}

/// Everything the report holds.
#[derive(Debug, Default)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The figures in scenario order.
    pub figures: Vec<Figure>,
    /// Per scenario: a Markdown section with its method, raw runs and CPU breakdown.
    pub sections: Vec<(String, String)>,
    /// Plots: (caption, file name relative to the report).
    pub plots: Vec<(String, String)>,
    /// Command line and duration of the run.
    pub run: String,
}

/// The figures as an aligned plain-text table.
pub fn table(figures: &[Figure]) -> String {
    let rows: Vec<[String; 5]> = figures
        .iter()
        .map(|f| {
            [
                f.id.to_string(),
                f.name.clone(),
                value_text(f.value, f.unit),
                f.goal.text(f.unit),
                f.verdict(),
            ]
        })
        .collect();
    let header = ["id", "figure", "value", "target", "result"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// The figures as a Markdown table (id, figure, value, target, result, baseline).
pub fn markdown_table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| id | figure | value | target | result | baseline |\n|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            f.id,
            f.name,
            value_text(f.value, f.unit),
            f.goal.text(f.unit),
            f.verdict(),
            f.baseline
        );
    }
    out
}

/// The whole report as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("# ferry benchmark report\n\n");
    let _ = writeln!(out, "{}\n\n## Machine\n", report.run);
    for (k, v) in &report.machine.lines {
        let _ = writeln!(out, "- {k}: {v}");
    }
    out.push_str("\n## Results\n\n");
    out.push_str(&markdown_table(&report.figures));
    out.push_str("\n### Raw numbers\n\n");
    for f in &report.figures {
        let _ = writeln!(out, "- **{}** {}: {}", f.id, f.name, f.raw);
    }
    for (title, body) in &report.sections {
        let _ = writeln!(out, "\n## {title}\n\n{}", body.trim_end());
    }
    if !report.plots.is_empty() {
        out.push_str("\n## Plots\n\n");
        for (caption, file) in &report.plots {
            let _ = writeln!(out, "![{caption}]({file})\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(value: f64, goal: Goal, unit: &'static str) -> Figure {
        Figure {
            id: "P1",
            name: "RPS(gateway) ÷ RPS(direct)".to_string(),
            value,
            unit,
            goal,
            baseline: "direct 1000 /s".to_string(),
            raw: "runs".to_string(),
        }
    }

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(figure(0.8, Goal::AtLeast(0.7), "").verdict(), "met");
        assert_eq!(
            figure(0.35, Goal::AtLeast(0.7), "").verdict(),
            "missed by 0.35 (50 %)"
        );
        assert_eq!(
            figure(150.0, Goal::AtMost(100.0), "µs").verdict(),
            "missed by 50 µs (50 %)"
        );
        assert_eq!(
            figure(50.0, Goal::Below(50.0), "ms").verdict(),
            "missed by 0.0 ms (0 %)"
        );
        assert!(!figure(f64::NAN, Goal::AtMost(1.0), "").met());
    }

    #[test]
    fn table_is_aligned_and_markdown_has_every_figure() {
        let figures = vec![
            figure(0.8, Goal::AtLeast(0.7), ""),
            figure(12.5, Goal::AtMost(30.0), "MiB"),
        ];
        let text = table(&figures);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("value").unwrap();
        assert_eq!(lines[1].chars().position(|c| c == '0'), Some(col));
        let md = markdown(&Report {
            figures,
            ..Default::default()
        });
        assert!(md.contains("| P1 | RPS(gateway) ÷ RPS(direct) | 0.80 | ≥ 0.70 | met |"));
        assert!(md.contains("| 12.5 MiB | ≤ 30.0 MiB | met |"));
    }
}
