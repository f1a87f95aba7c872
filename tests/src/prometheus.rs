//! Prometheus text in tests: [`Samples`], a small parser of the text exposition for value
//! assertions, and [`check_metrics`], which runs the real `promtool check metrics` on it
//! (parsing must succeed; lint findings only for the names a test allows).
//!
//! promtool is `$FERRY_PROMTOOL`, else `target/tools/promtool` of the workspace; when that is
//! missing it is fetched there first with `deploy/promtool.sh` (Debian's prometheus package,
//! extracted, not installed), as `make promtool` does.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written (with `_bucket`, `_count`, ... for histograms).
    pub name: String,
    /// Label names and values (unescaped).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Every sample of an exposition.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    /// Parses the text format; panics on a line it cannot read.
    pub fn parse(text: &str) -> Samples {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| parse_line(line).unwrap_or_else(|| panic!("bad sample line {line:?}")))
            .collect();
        Samples(samples)
    }

    /// The value of the series `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Every sample of `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_string(), value);
            rest = &after[end + 1..];
        }
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The promtool binary, fetched first if needed.
pub fn promtool() -> PathBuf {
    static FETCH: Mutex<()> = Mutex::new(());
    let path = std::env::var_os("FERRY_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/tools/promtool"));
    let _once = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !path.is_file() {
        let script = workspace().join("deploy/promtool.sh");
        let status = Command::new(&script)
            .arg(&path)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            status.success(),
            "{} {} failed ({status}): run `make promtool`",
            script.display(),
            path.display()
        );
    }
    path
}

/// Runs `promtool check metrics` on `text`; panics unless it parses, and unless every lint
/// finding (promtool's exit status 3) is about a metric in `lint_allowed`: OpenFaaS' own
/// names break two of promtool's naming rules (`gateway_function_invocation_started` is a
/// counter without `_total`, `gateway_service_count` a gauge ending in `_count`).
pub fn check_metrics(what: &str, text: &str, lint_allowed: &[&str]) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("running promtool");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed = |line: &str| {
        let name = line.split_whitespace().next().unwrap_or_default();
        lint_allowed.contains(&name)
    };
    let passed = match out.status.code() {
        Some(0) => findings.trim().is_empty(),
        Some(3) => findings
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(allowed),
        _ => false,
    };
    assert!(
        passed,
        "promtool check metrics on {what}'s /metrics ({}):\n{findings}\n--- text:\n{text}",
        out.status
    );
}

/// A real Prometheus server (Debian's, extracted beside promtool by `deploy/promtool.sh`) on
/// 127.0.0.1, scraping the given targets every second into a temporary folder; killed when
/// dropped.
pub struct PrometheusServer {
    child: std::process::Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus on `port` scraping `targets` (`host:port`, job `ferry`) and waits
    /// until it answers.
    pub async fn start(port: u16, targets: &[String]) -> PrometheusServer {
        let tool = promtool();
        let binary = tool
            .parent()
            .expect("promtool's folder")
            .join(".cache/prometheus-root/usr/bin/prometheus");
        assert!(
            binary.is_file(),
            "{} is missing: run `make promtool`",
            binary.display()
        );
        let data = tempfile::tempdir().expect("a temporary folder");
        let config = data.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    \
                 static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("writing prometheus.yml");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let server = PrometheusServer {
            child,
            port,
            _data: data,
        };
        let ready = server.url("/-/ready");
        crate::wait_until(
            "Prometheus is ready",
            std::time::Duration::from_secs(30),
            || {
                let ready = ready.clone();
                async move {
                    crate::http_client()
                        .get(ready)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
        )
        .await;
        server
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_and_labels() {
        let text = "# HELP a_total x\n# TYPE a_total counter\n\
                    a_total{code=\"200\",function_name=\"echo.openfaas-fn\"} 7\n\
                    b{x=\"q\\\"uote,d\"} 1.5 1700000000\n\
                    c_bucket{le=\"+Inf\"} 3\nd 0\n";
        let s = Samples::parse(text);
        assert_eq!(
            s.value(
                "a_total",
                &[("function_name", "echo.openfaas-fn"), ("code", "200")]
            ),
            Some(7.0)
        );
        assert_eq!(s.value("a_total", &[("code", "200")]), None);
        assert_eq!(s.value("b", &[("x", "q\"uote,d")]), Some(1.5));
        assert_eq!(s.value("c_bucket", &[("le", "+Inf")]), Some(3.0));
        assert_eq!(s.value("d", &[]), Some(0.0));
        assert_eq!(s.named("a_total").count(), 1);
    }
}
