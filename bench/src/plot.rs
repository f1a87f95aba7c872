//! Hand-written SVG line charts: latency distributions (CDF on a logarithmic axis) and
//! throughput over time.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// One line of a chart: name and (x, y) points.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// The cumulative distribution of `h` (µs) as points (latency in µs, percent of requests).
pub fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=200)
        .map(|i| {
            let q = f64::from(i) / 200.0;
            (h.value_at_quantile(q).max(1) as f64, q * 100.0)
        })
        .collect()
}

/// The axes' ranges of `series`: x from and to (as plotted: a power of ten with `log_x`), y
/// up to 5 % above the highest point.
fn bounds(series: &[Series], log_x: bool) -> (f64, f64, f64) {
    let tx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if log_x {
        x0 = x0.floor();
        x1 = x1.ceil().max(x0 + 1.0);
    } else if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.05 };
    (x0, x1, y1)
}

/// A line chart as an SVG document; `log_x` puts x on a base-10 logarithmic axis.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> String {
    let tx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let (x0, x1, y1) = bounds(series, log_x);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - y / y1 * ph;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
    // Axes, ticks and grid.
    let _ = writeln!(
        svg,
        "<path d=\"M{LEFT} {TOP} V{} H{}\" stroke=\"black\" fill=\"none\"/>",
        TOP + ph,
        LEFT + pw
    );
    for i in 0..=5 {
        let y = y1 / 1.05 * f64::from(i) / 5.0;
        let (right, at, label_x) = (LEFT + pw, py(y), LEFT - 6.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{label_x}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            at + 4.0,
            tick(y)
        );
    }
    let xticks: Vec<f64> = if log_x {
        (x0 as i32..=x1 as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=6)
            .map(|i| x0 + (x1 - x0) * f64::from(i) / 6.0)
            .collect()
    };
    for x in xticks {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            px(x),
            TOP + ph,
            TOP + ph + 16.0,
            tick(x)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {3})\">{}</text>",
        LEFT + pw / 2.0,
        H - 12.0,
        escape(x_label),
        TOP + ph / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            path.join(" "),
            LEFT + 10.0,
            TOP + 16.0 + 16.0 * i as f64,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn tick(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_line_per_series_and_escapes_text() {
        let series = vec![
            Series {
                name: "gateway".into(),
                points: vec![(10.0, 0.0), (1000.0, 100.0)],
            },
            Series {
                name: "direct <raw>".into(),
                points: vec![(5.0, 0.0), (500.0, 100.0)],
            },
        ];
        let svg = line_chart("latency", "µs", "%", &series, true);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("direct &lt;raw&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
