//! The nine scenarios, one file each, sharing a [`Ctx`]: the stack, the load client, run
//! lengths, what earlier scenarios measured, and the report being written.

mod p1_sync;
mod p2_latency;
mod p3_async_submit;
mod p4_async_e2e;
mod p5_concurrency;
mod p6_cold_start;
mod p7_memory;
mod p8_growth;
mod p9_fairness;

use std::path::PathBuf;
use std::time::Duration;

use crate::load::{self, Client};
use crate::report::{Figure, Report};
use crate::stack::Stack;
use crate::sysinfo::CpuMeter;

/// Callers of the closed loops (P1, P3), the same for gateway and direct.
pub const CONCURRENCY: usize = 32;

/// Every scenario id, in running order.
pub const ALL: [&str; 9] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9"];

/// What the scenarios share.
pub struct Ctx {
    /// The stack.
    pub stack: Stack,
    /// The load generator's client.
    pub client: Client,
    /// Short runs (`--quick`).
    pub quick: bool,
    /// Where plots go (`target/bench/`).
    pub out_dir: PathBuf,
    /// The report being written.
    pub report: Report,
    /// P1's gateway requests per second (the baseline of P2–P4).
    pub p1_gateway_rps: Option<f64>,
    /// P3's accepted submissions per second.
    pub p3_submit_rps: Option<f64>,
    /// Peak RSS readings (MiB) of the gateway and the worker, with when they were taken.
    pub rss: Vec<(&'static str, &'static str, f64)>,
}

impl Ctx {
    /// A new context.
    pub fn new(stack: Stack, quick: bool, out_dir: PathBuf) -> Ctx {
        Ctx {
            stack,
            client: load::client(),
            quick,
            out_dir,
            report: Report::default(),
            p1_gateway_rps: None,
            p3_submit_rps: None,
            rss: Vec::new(),
        }
    }

    /// Warm-up before a scenario's measured runs.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 1.0 } else { 3.0 })
    }

    /// Length of one measured run.
    pub fn run_len(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 1.5 } else { 5.0 })
    }

    /// Measured repeats of each run.
    pub fn repeats(&self) -> usize {
        3
    }

    /// Adds a figure.
    pub fn figure(&mut self, figure: Figure) {
        self.report.figures.push(figure);
    }

    /// Adds a report section.
    pub fn section(&mut self, title: &str, body: String) {
        self.report.sections.push((title.to_string(), body));
    }

    /// Writes `svg` as `target/bench/<file>` and lists it in the report.
    pub fn plot(&mut self, file: &str, caption: &str, svg: String) {
        let path = self.out_dir.join(file);
        match std::fs::write(&path, svg) {
            Ok(()) => self
                .report
                .plots
                .push((caption.to_string(), file.to_string())),
            Err(e) => eprintln!("bench: writing {}: {e}", path.display()),
        }
    }

    /// Starts measuring the CPU time of the gateways, haproxy, the workers, the `echo`
    /// container, the NATS servers and this process (load generator plus the in-process
    /// provider).
    pub async fn cpu_meter(&self) -> CpuMeter {
        let mut groups = vec![("gateway".to_string(), self.stack.gateway_pids())];
        if let Some(pid) = self.stack.front_pid() {
            groups.push(("haproxy".to_string(), vec![pid]));
        }
        let workers = self.stack.worker_pids();
        if !workers.is_empty() {
            groups.push(("queue-worker".to_string(), workers));
        }
        if let Some(pid) = self.stack.container_pid("echo").await {
            groups.push((
                "echo container".to_string(),
                crate::sysinfo::with_descendants(pid),
            ));
        }
        let proxies = crate::sysinfo::docker_proxies();
        if !proxies.is_empty() {
            groups.push(("docker-proxy".to_string(), proxies));
        }
        let nats = self.stack.nats_pids();
        if !nats.is_empty() {
            groups.push(("nats-server".to_string(), nats));
        }
        groups.push((
            "bench (load + provider)".to_string(),
            vec![std::process::id()],
        ));
        CpuMeter::start(groups)
    }

    /// Records the gateway's and worker's peak RSS now, labelled `when`.
    pub fn read_rss(&mut self, when: &'static str) {
        let first_gateway = self.stack.gateway_pids()[0];
        if let Some(mib) = crate::sysinfo::peak_rss_mib(first_gateway) {
            self.rss.push(("gateway", when, mib));
        }
        if let Some(mib) = self
            .stack
            .worker_pid()
            .and_then(crate::sysinfo::peak_rss_mib)
        {
            self.rss.push(("queue-worker", when, mib));
        }
    }
}

/// Scenarios that must run before `id` (their figures are its baseline).
pub fn needs(id: &str) -> &'static [&'static str] {
    match id {
        "P2" | "P3" | "P4" => &["P1"],
        "P7" => &["P1", "P4"],
        _ => &[],
    }
}

/// Runs scenario `id`.
pub async fn run(ctx: &mut Ctx, id: &str) -> anyhow::Result<()> {
    match id {
        "P1" => p1_sync::run(ctx).await,
        "P2" => p2_latency::run(ctx).await,
        "P3" => p3_async_submit::run(ctx).await,
        "P4" => p4_async_e2e::run(ctx).await,
        "P5" => p5_concurrency::run(ctx).await,
        "P6" => p6_cold_start::run(ctx).await,
        "P7" => p7_memory::run(ctx).await,
        "P8" => p8_growth::run(ctx).await,
        "P9" => p9_fairness::run(ctx).await,
        other => anyhow::bail!("unknown scenario {other}"),
    }
}

/// P1's gateway rate, or an error naming `id` when P1 did not run.
pub fn p1_rate(ctx: &Ctx, id: &str) -> anyhow::Result<f64> {
    ctx.p1_gateway_rps
        .ok_or_else(|| anyhow::anyhow!("{id} needs P1's gateway rate"))
}

/// `a, b, c` with one decimal.
pub fn list(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|x| format!("{x:.1}")).collect();
    v.join(", ")
}
