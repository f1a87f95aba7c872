//! The `ferry` CLI (`cli/`) run as a real child process against a test's stack: its own
//! working folder and config folder, the gateway in `OPENFAAS_URL`, stdin given, exit code,
//! stdout and stderr captured; and golden JSON files compared with volatile fields
//! normalised.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// What one run of `ferry` did.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// `ferry` for one test: working folder, config folder, gateway.
pub struct Ferry {
    bin: PathBuf,
    gateway: String,
    /// The working folder (stack files and handlers go here).
    pub dir: tempfile::TempDir,
    /// `FERRY_CONFIG` (and `OPENFAAS_CONFIG` unless [`Ferry::faas_cli_config`] names one).
    pub config: tempfile::TempDir,
    faas_cli_config: Option<PathBuf>,
}

impl Ferry {
    /// Builds the binary (once per process) and points it at `gateway`.
    pub async fn new(gateway: &str) -> Ferry {
        let bin = tokio::task::spawn_blocking(|| crate::process::host_binary("ferry-cli", "ferry"))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Ferry {
            bin,
            gateway: gateway.to_owned(),
            dir: tempfile::tempdir().expect("a working folder"),
            config: tempfile::tempdir().expect("a config folder"),
            faas_cli_config: None,
        }
    }

    /// Reads faas-cli's config file from `dir` (`OPENFAAS_CONFIG`), e.g. `make login`'s.
    pub fn faas_cli_config(mut self, dir: &Path) -> Ferry {
        self.faas_cli_config = Some(dir.to_path_buf());
        self
    }

    /// The working folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry args` with `stdin`, in the working folder.
    pub async fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = std::process::Command::new(&self.bin);
        crate::images::without_test_cargo_env(&mut command);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("OPENFAAS_URL", &self.gateway)
            .env("FERRY_CONFIG", self.config.path())
            .env(
                "OPENFAAS_CONFIG",
                self.faas_cli_config
                    .as_deref()
                    .unwrap_or(self.config.path()),
            )
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_WATCHDOG_IMAGE")
            .env_remove("OPENFAAS_PREFIX")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(stdin).await.expect("writing ferry's stdin");
        drop(input);
        let out = child.wait_with_output().await.expect("waiting for ferry");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// [`run`](Self::run), expecting exit code `code`.
    pub async fn expect(&self, code: i32, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin).await;
        assert_eq!(
            out.code, code,
            "ferry {args:?} exited {} (wanted {code})\nstdout: {}\nstderr: {}",
            out.code, out.stdout, out.stderr
        );
        out
    }

    /// [`run`](Self::run), expecting success; stdout.
    pub async fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        self.expect(0, args, stdin).await.stdout
    }
}

/// Fields whose values change from run to run: replaced by `"<volatile>"` where present.
const VOLATILE: [&str; 11] = [
    "callId",
    "createdAt",
    "submittedAt",
    "startedAt",
    "finishedAt",
    "updatedAt",
    "deadLetteredAt",
    "durationSeconds",
    "sequence",
    "deadLetterSequence",
    "next",
];

/// Fields present or not depending on timing (a function's `usage` once the provider has
/// sampled its replicas): left out.
const SOMETIMES: [&str; 1] = ["usage"];

/// `value` with [`VOLATILE`] fields replaced, [`SOMETIMES`] fields removed and every
/// `(from, to)` of `replace` made in its strings.
pub fn normalise(value: &mut Value, replace: &[(&str, &str)]) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !SOMETIMES.contains(&key.as_str()));
            for (key, v) in map.iter_mut() {
                if VOLATILE.contains(&key.as_str()) && !v.is_null() {
                    *v = Value::String("<volatile>".into());
                } else {
                    normalise(v, replace);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, replace)),
        Value::String(s) => {
            for (from, to) in replace {
                *s = s.replace(from, to);
            }
        }
        _ => {}
    }
}

/// Compares JSON `text` (normalised) with the golden file `tests/tests/cli/<name>.json`;
/// `FERRY_BLESS=1` writes the file instead.
pub fn assert_golden(name: &str, text: &str, replace: &[(&str, &str)]) {
    let mut value: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
    normalise(&mut value, replace);
    let got = serde_json::to_string_pretty(&value).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli")
        .join(format!("{name}.json"));
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FERRY_BLESS=1 writes it)", path.display()));
    assert_eq!(got, want, "{name}: golden file {} differs", path.display());
}
