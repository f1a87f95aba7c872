//! What `/proc` says: peak memory (VmHWM) and CPU time of processes, and the machine itself.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::report::Machine;

/// Peak resident set size (`VmHWM`) of `pid` in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// User plus system CPU time of `pid` (all its threads) in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `pid` and its descendants (from `/proc/<pid>/task/*/children`).
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children = std::fs::read_to_string(task.path().join("children"));
                all.extend(
                    children
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

/// Every `docker-proxy` process (the engine's userland proxy behind published ports).
pub fn docker_proxies() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with(b"docker-proxy"))
        })
        .collect()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Busy and total clock ticks of the whole machine, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// CPU time of named groups of processes over an interval, and of the whole machine.
pub struct CpuMeter {
    groups: Vec<(String, Vec<u32>)>,
    start: BTreeMap<String, u64>,
    machine: Option<(u64, u64)>,
    started: Instant,
}

impl CpuMeter {
    /// Starts measuring each named group of pids.
    pub fn start(groups: Vec<(String, Vec<u32>)>) -> CpuMeter {
        let start = groups
            .iter()
            .map(|(name, pids)| {
                (
                    name.clone(),
                    pids.iter().filter_map(|p| cpu_ticks(*p)).sum(),
                )
            })
            .collect();
        CpuMeter {
            groups,
            start,
            machine: machine_ticks(),
            started: Instant::now(),
        }
    }

    /// Per group, the cores used since the start (1.0 = one core busy); then everything else
    /// that ran on the machine meanwhile (`other processes`: other users' builds and tests on
    /// a shared machine) and the machine's busy cores in all.
    pub fn finish(&self) -> Vec<(String, f64)> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let hz = ticks_per_second();
        let mut usage: Vec<(String, f64)> = self
            .groups
            .iter()
            .map(|(name, pids)| {
                let now: u64 = pids.iter().filter_map(|p| cpu_ticks(*p)).sum();
                let used = now.saturating_sub(self.start[name]) as f64 / hz;
                (name.clone(), used / wall)
            })
            .collect();
        if let (Some((busy0, _)), Some((busy1, _))) = (self.machine, machine_ticks()) {
            let busy = busy1.saturating_sub(busy0) as f64 / hz / wall;
            let ours: f64 = usage.iter().map(|u| u.1).sum();
            usage.push(("other processes".to_string(), (busy - ours).max(0.0)));
            usage.push(("machine busy".to_string(), busy));
        }
        usage
    }
}

/// `name 0.85, …` cores, for the report.
pub fn cpu_text(usage: &[(String, f64)]) -> String {
    let parts: Vec<String> = usage.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
    format!("CPU in cores: {}", parts.join(", "))
}

/// CPU time per operation in µs (cores ÷ operations per second), for the report: where the
/// CPU of one request or call goes.
pub fn per_op_text(usage: &[(String, f64)], ops_per_second: f64, op: &str) -> String {
    let rate = ops_per_second.max(1e-9);
    let parts: Vec<String> = usage
        .iter()
        .map(|(n, c)| format!("{n} {:.0}", c / rate * 1e6))
        .collect();
    format!("CPU µs per {op}: {}", parts.join(", "))
}

/// [`cpu_text`] and [`per_op_text`] together: the cores each process used and what that is
/// per operation.
pub fn cpu_per_op_text(usage: &[(String, f64)], ops_per_second: f64, op: &str) -> String {
    format!(
        "{}; {}",
        cpu_text(usage),
        per_op_text(usage, ops_per_second, op)
    )
}

/// `/proc/loadavg`'s three load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Cores, CPU model, memory, kernel and the current load.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    Machine {
        lines: vec![
            ("cores".into(), cores.to_string()),
            ("CPU".into(), model),
            ("memory".into(), memory),
            ("kernel".into(), kernel),
            ("load average (1, 5, 15 min) at start".into(), load()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_operation_is_cores_over_rate_in_microseconds() {
        let usage = vec![
            ("gateway".to_string(), 0.5),
            ("machine busy".to_string(), 1.8),
        ];
        assert_eq!(
            per_op_text(&usage, 5000.0, "request"),
            "CPU µs per request: gateway 100, machine busy 360"
        );
        // No operations: no division by zero, just a huge figure.
        assert!(per_op_text(&usage, 0.0, "call").starts_with("CPU µs per call: gateway "));
    }
}
