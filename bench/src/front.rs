//! The load balancer of `--cluster` runs: Debian's haproxy in front of the gateways, as in
//! `compose.cluster.yaml`, with the settings of `deploy/haproxy/haproxy.cfg` (health checks,
//! retries, timeouts) but listening on loopback and naming the gateways by their loopback
//! ports instead of Docker's DNS names.
//!
//! The binary is the one `make bench BENCH_ARGS=--cluster` extracts from Debian's package
//! (never installed) into `FERRY_HAPROXY_ROOT`; it runs as a child process of the bench, so
//! its CPU time is measured like the gateways'.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use ferry_tests::process::ServiceProcess;

/// compose's haproxy configuration, the one adapted here.
const COMPOSE_CONFIG: &str = include_str!("../../deploy/haproxy/haproxy.cfg");

/// A running haproxy and its configuration file.
pub struct Front {
    /// The process (killed on drop).
    pub process: ServiceProcess,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// compose's haproxy configuration bound to `127.0.0.1:port`, its servers the gateways at
/// `127.0.0.1:<gateways[i]>`, without the Docker DNS resolver.
pub fn config(port: u16, gateways: &[u16]) -> String {
    let mut out =
        String::from("# deploy/haproxy/haproxy.cfg adapted by the bench (bench/src/front.rs)\n");
    let mut in_resolvers = false;
    for line in COMPOSE_CONFIG.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        } else if trimmed.starts_with("resolvers ") {
            in_resolvers = true;
        } else if in_resolvers {
            in_resolvers = !trimmed.is_empty();
        } else if trimmed.starts_with("bind ") {
            out.push_str(&format!("    bind 127.0.0.1:{port}\n"));
        } else if trimmed.starts_with("default-server ") {
            out.push_str(&line.replace(" resolvers docker init-addr none", ""));
            out.push('\n');
            for (i, gateway) in gateways.iter().enumerate() {
                out.push_str(&format!(
                    "    server gateway-{} 127.0.0.1:{gateway}\n",
                    i + 1
                ));
            }
        } else if !trimmed.starts_with("server ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Front {
    /// Starts haproxy on a free port in front of the gateways at `gateways`.
    pub fn start(gateways: &[u16]) -> anyhow::Result<Front> {
        let root = std::env::var_os("FERRY_HAPROXY_ROOT")
            .map(PathBuf::from)
            .context(
                "--cluster needs FERRY_HAPROXY_ROOT (Debian's haproxy extracted there; \
             `make bench BENCH_ARGS=--cluster` does it)",
            )?;
        let binary = root.join("usr/sbin/haproxy");
        if !binary.is_file() {
            bail!("no haproxy at {}", binary.display());
        }
        let port = ferry_tests::free_port();
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config(port, gateways))?;
        let libraries = format!(
            "{}:{}",
            root.join("usr/lib/x86_64-linux-gnu").display(),
            root.join("lib/x86_64-linux-gnu").display()
        );
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .env("LD_LIBRARY_PATH", libraries)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Front {
            process: ServiceProcess::adopt("haproxy", child),
            port,
            _dir: dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_config_on_loopback() {
        let c = config(9000, &[9001, 9002]);
        assert!(c.contains("    bind 127.0.0.1:9000\n"), "{c}");
        assert!(c.contains("server gateway-1 127.0.0.1:9001\n"), "{c}");
        assert!(c.contains("server gateway-2 127.0.0.1:9002\n"), "{c}");
        assert!(!c.contains("resolvers") && !c.contains("127.0.0.11"), "{c}");
        assert!(!c.contains("gateway-1:8080"), "{c}");
        // The compose file's health checks and retries are kept.
        assert!(c.contains("option httpchk GET /healthz"), "{c}");
        assert!(c.contains("retry-on conn-failure empty-response"), "{c}");
        assert!(
            c.contains("default-server check inter 1s fall 2 rise 2\n"),
            "{c}"
        );
    }
}
