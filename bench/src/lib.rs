//! `bench`: ferry's benchmark suite.
//!
//! It starts the real stack ([`stack`]: `nats-server -js`, `provider-docker`, the release
//! `gateway` and `queue-worker` as child processes, function containers built on this
//! machine), drives load from its own process ([`load`]: keep-alive HTTP/1, closed and open
//! loops, HDR histograms), runs the scenarios P1–P9 ([`scenarios`], one file each), prints a
//! table and writes `target/bench/report.md` with SVG plots ([`plot`]) next to it.
//!
//! Usage: `bench [--quick] [--only P1,P3] [--out DIR] [--nats-cluster | --cluster]` (`make bench` builds
//! the release binaries and runs it). `--quick` makes every run short, for a smoke check;
//! `--only` runs the named scenarios plus those they need (P2–P4 need P1's rate, P7 reads P1
//! and P4); `--nats-cluster` runs on three clustered nats-servers with every stream R3;
//! `--cluster` runs on the shape of `compose.cluster.yaml` (three clustered nats-servers, two
//! gateways behind haproxy, three workers; haproxy from `FERRY_HAPROXY_ROOT`, which
//! `make bench` fills when `BENCH_ARGS` has `--cluster`).
//!
//! Environment: `FERRY_BIN_DIR` (required: the folder holding release `gateway` and
//! `queue-worker`; `make bench` sets it), `FERRY_STATIC_DIR` (the static `watchdog` and
//! `echo-server` for function images; built on demand when unset), `NATS_SERVER_BIN`
//! (`nats-server` from `PATH` when unset).
//!
//! Everything in Docker carries `com.ferry.test=<id>` and is removed when the run ends, also on
//! an error or Ctrl-C. Traffic goes to 127.0.0.1 only. The benchmark reports; it asserts
//! nothing about timing.

pub mod front;
pub mod load;
pub mod plot;
pub mod report;
pub mod scenarios;
pub mod stack;
pub mod stats;
pub mod sysinfo;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use futures_util::FutureExt;
use scenarios::{ALL, Ctx};

/// Command-line options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Short runs.
    pub quick: bool,
    /// Scenarios to run, in order, with what they need.
    pub only: Vec<&'static str>,
    /// Output folder.
    pub out: PathBuf,
    /// The stack's shape: `--nats-cluster` or `--cluster` (see [`stack::Topology`]).
    pub topology: stack::Topology,
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        only: ALL.to_vec(),
        out: PathBuf::from("target/bench"),
        topology: stack::Topology::Single,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--nats-cluster" => options.topology = stack::Topology::NatsCluster,
            "--cluster" => options.topology = stack::Topology::Cluster,
            "--only" => {
                let list = args.next().ok_or("--only needs a list such as P1,P3")?;
                let mut wanted = Vec::new();
                for id in list.split(',').map(|s| s.trim().to_ascii_uppercase()) {
                    let id = ALL
                        .iter()
                        .find(|a| **a == id)
                        .ok_or_else(|| format!("unknown scenario {id:?} (P1 to P9)"))?;
                    wanted.push(*id);
                    wanted.extend(scenarios::needs(id).iter().copied());
                }
                options.only = ALL.iter().copied().filter(|a| wanted.contains(a)).collect();
            }
            "--out" => options.out = PathBuf::from(args.next().ok_or("--out needs a folder")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

const USAGE: &str =
    "usage: bench [--quick] [--only P1,P3] [--out target/bench] [--nats-cluster | --cluster]";

/// Runs the benchmark with the process's arguments.
pub fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let result = runtime.block_on(async {
        tokio::select! {
            r = bench(options) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; cleaning up")),
        }
    });
    // Dropping the runtime drops the stack: processes are killed, Docker objects removed.
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(options: Options) -> anyhow::Result<()> {
    if std::env::var_os("FERRY_BIN_DIR").is_none() {
        anyhow::bail!(
            "FERRY_BIN_DIR must name the folder of release gateway and queue-worker (make bench sets it)"
        );
    }
    std::fs::create_dir_all(&options.out)?;
    let started = Instant::now();
    let machine = sysinfo::machine();
    eprintln!("bench: starting the stack");
    let mut stack = stack::Stack::start(options.topology).await?;
    stack.start_worker(64).await;
    let mut ctx = Ctx::new(stack, options.quick, options.out.clone());
    ctx.report.machine = machine;
    let mut failures = Vec::new();
    for id in &options.only {
        eprintln!(
            "bench: {id} ({:.0} s so far)",
            started.elapsed().as_secs_f64()
        );
        // The harness panics on what it cannot do; one scenario's failure ends only that one.
        let outcome = AssertUnwindSafe(scenarios::run(&mut ctx, id))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(anyhow::anyhow!("panicked: {}", panic_text(&*panic))));
        if let Err(e) = outcome {
            eprintln!("bench: {id} failed: {e:#}");
            failures.push(format!("{id}: {e:#}"));
            ctx.section(&format!("{id} failed"), format!("{e:#}\n"));
        }
    }
    ctx.report.machine.lines.push((
        "load average (1, 5, 15 min) at the end".into(),
        sysinfo::load(),
    ));
    ctx.report.run = format!(
        "`bench{}{}{}` ran {} in {:.0} s.",
        if options.quick { " --quick" } else { "" },
        options.topology.flag(),
        if options.only.len() < ALL.len() {
            format!(" --only {}", options.only.join(","))
        } else {
            String::new()
        },
        options.only.join(", "),
        started.elapsed().as_secs_f64()
    );
    let path = options.out.join("report.md");
    std::fs::write(&path, report::markdown(&ctx.report))?;
    println!("{}", report::table(&ctx.report.figures));
    println!("report: {}", path.display());
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("scenarios failed: {}", failures.join("; "))
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn only_adds_what_scenarios_need_in_order() {
        let o = parse(&args("--quick --only p7,P3")).unwrap();
        assert!(o.quick);
        assert_eq!(o.only, vec!["P1", "P3", "P4", "P7"]);
        assert_eq!(parse(&[]).unwrap().only, ALL.to_vec());
        assert!(parse(&args("--only P10")).is_err());
        assert!(parse(&args("--fast")).is_err());
    }
}
