//! The statically linked `watchdog` and `echo-server` that go into `FROM scratch` images.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The binaries every function image needs, by Cargo target name, with their packages.
const BINARIES: [(&str, &str); 2] = [
    ("ferry-watchdog", "watchdog"),
    ("ferry-test-functions", "echo-server"),
];
/// The explicit target makes `RUSTFLAGS` apply to the binaries only, not to build scripts.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// A folder holding statically linked `watchdog` and `echo-server`.
///
/// `$FERRY_STATIC_DIR` if set; otherwise, once per process, `cargo build --release --target
/// x86_64-unknown-linux-gnu` of both with `RUSTFLAGS='-C target-feature=+crt-static'` (cargo's
/// output goes to stderr), and the folder cargo put them in. Blocks while cargo runs; panics if
/// the build fails.
pub fn static_binaries() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("FERRY_STATIC_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build(),
    })
    .clone()
}

/// Removes from `command` the variables cargo sets for the test process itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `CARGO_CRATE_NAME`, ...). A nested cargo would pass
/// them on to build scripts, and those that watch one (ring's watches `CARGO_MANIFEST_DIR`)
/// would rerun and recompile everything above them whenever a build from a test follows one
/// from a shell, and back.
pub fn without_test_cargo_env(command: &mut Command) -> &mut Command {
    const EXACT: [&str; 6] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if EXACT.contains(&name)
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
        {
            command.env_remove(name);
        }
    }
    command
}

fn build() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .args(["--release", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"]);
    for (package, bin) in BINARIES {
        command.args(["-p", package, "--bin", bin]);
    }
    without_test_cargo_env(&mut command)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("ferry-tests: building static function binaries: {command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", Path::new(&cargo).display()));

    // stdout is one JSON message per line; the artifacts name the executables' paths.
    let mut found: Vec<PathBuf> = Vec::new();
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("reading cargo's output");
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let target_name = message["target"]["name"].as_str().unwrap_or_default();
        let executable = message["executable"].as_str();
        if message["reason"] == "compiler-artifact"
            && BINARIES.iter().any(|(_, bin)| *bin == target_name)
        {
            found.extend(executable.map(PathBuf::from));
        }
    }
    let status = child.wait().expect("waiting for cargo");
    assert!(
        status.success(),
        "building the static function binaries failed ({status}); see cargo's output above"
    );
    let dir = found
        .first()
        .and_then(|path| path.parent())
        .map(Path::to_path_buf)
        .expect("cargo reported no executables");
    for (_, bin) in BINARIES {
        assert!(
            dir.join(bin).is_file(),
            "cargo did not put {bin} in {}",
            dir.display()
        );
    }
    dir
}
