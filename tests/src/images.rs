//! Function images made on this machine, without a registry: the equivalent of `FROM scratch`
//! plus the workspace's static `watchdog` (as `/usr/bin/fwatchdog`), the host's static
//! `/bin/busybox` (for `sh`, `cat`, ...), optionally the static `echo-server`, and extra files.
//!
//! The image is imported from an in-memory root-filesystem tar with its `ENV`, `EXPOSE`, `CMD`
//! and `LABEL` settings (the Engine API behind `docker import --change`): one layer, no build
//! containers, a fraction of a second, where the classic builder takes about a second per
//! `Dockerfile` step.

mod binaries;

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::body_full;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

pub use binaries::{static_binaries, without_test_cargo_env};

use crate::DockerGuard;

/// Where busybox is taken from on the host; it must be statically linked (Debian's is).
const BUSYBOX: &str = "/bin/busybox";
/// busybox applets linked into `/bin`.
const APPLETS: &str = "sh ash cat echo printf sleep env true false test [ ls head tail tr wc grep \
    sed awk cut sort uniq tee dd seq date stat id kill ps mkdir rm cp mv touch timeout base64 \
    sha256sum xargs yes uname hostname wget nc";
/// Modification time of every file, so images of identical specs share an identical layer.
const MTIME: u64 = 1_700_000_000;
/// The default script of [`ImageSpec::shell_serializing`]: the request line, then the body.
pub const DEFAULT_HANDLER: &str = "#!/bin/sh\necho \"$Http_Method $Http_Path $Http_Query\"\ncat\n";

/// A file added to an image.
#[derive(Clone, Debug)]
pub struct ImageFile {
    /// Absolute path inside the image.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
    /// Unix permission bits, e.g. `0o755`.
    pub mode: u32,
}

/// What goes into a function image besides the watchdog and busybox.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// `ENV` lines (watchdog configuration: `mode`, `fprocess`, timeouts, ...).
    pub env: Vec<(String, String)>,
    /// Extra files.
    pub files: Vec<ImageFile>,
    /// Whether to add the static `echo-server` at `/usr/bin/echo-server`.
    pub with_echo_server: bool,
    /// The image's `USER` (none: the engine's default, root).
    pub user: Option<String>,
}

impl ImageSpec {
    /// The watchdog in `http` mode proxying to `echo-server` on 127.0.0.1:5000. Short
    /// `healthcheck_interval` and `write_timeout`, so containers stop quickly.
    pub fn echo_http() -> ImageSpec {
        ImageSpec {
            with_echo_server: true,
            ..Default::default()
        }
        .env("mode", "http")
        .env("fprocess", "/usr/bin/echo-server")
        .env("upstream_url", "http://127.0.0.1:5000")
        .env("healthcheck_interval", "1s")
        .env("write_timeout", "5s")
    }

    /// The watchdog in `streaming` mode running `cat`: the response is the request body.
    pub fn cat_streaming() -> ImageSpec {
        ImageSpec::default()
            .env("mode", "streaming")
            .env("fprocess", "cat")
    }

    /// The watchdog in `serializing` mode running `script` (a shell script with its `#!` line,
    /// e.g. [`DEFAULT_HANDLER`]) installed as `/usr/bin/handler`.
    pub fn shell_serializing(script: &str) -> ImageSpec {
        ImageSpec::default()
            .env("mode", "serializing")
            .env("fprocess", "/usr/bin/handler")
            .file("/usr/bin/handler", script, 0o755)
    }

    /// The watchdog in `classic` mode (OpenFaaS's classic watchdog) running `fprocess` per
    /// request, `/_/ready` included. Short `healthcheck_interval` and `write_timeout`, as
    /// [`ImageSpec::echo_http`].
    pub fn classic(fprocess: &str) -> ImageSpec {
        ImageSpec::default()
            .env("mode", "classic")
            .env("fprocess", fprocess)
            .env("healthcheck_interval", "1s")
            .env("write_timeout", "5s")
    }

    /// Adds an `ENV` line.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ImageSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the image's `USER`, e.g. `1234:1234`.
    pub fn user(mut self, user: &str) -> ImageSpec {
        self.user = Some(user.to_owned());
        self
    }

    /// Adds a file.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> ImageSpec {
        self.files.push(ImageFile {
            path: path.to_owned(),
            contents: contents.into(),
            mode,
        });
        self
    }

    /// The image settings, as `Dockerfile` instructions: `ENV`, `EXPOSE`, `CMD`, `USER` when
    /// set and a `LABEL` for each of `labels`.
    fn changes(&self, labels: &HashMap<String, String>) -> Vec<String> {
        let mut env = String::from("ENV PATH=\"/usr/bin:/bin\"");
        for (key, value) in &self.env {
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad environment variable name {key:?}"
            );
            env.push_str(&format!(" {key}={}", quote(value)));
        }
        let mut changes = vec![
            env,
            "EXPOSE 8080".to_owned(),
            "CMD [\"/usr/bin/fwatchdog\"]".to_owned(),
        ];
        if let Some(user) = &self.user {
            changes.push(format!("USER {user}"));
        }
        let mut labels: Vec<_> = labels.iter().collect();
        labels.sort();
        for (key, value) in labels {
            changes.push(format!("LABEL {}={}", quote(key), quote(value)));
        }
        changes
    }

    /// The image's root filesystem as a tar, taking `watchdog` (and `echo-server`) from the
    /// folder `binaries`.
    pub fn rootfs_tar(&self, binaries: &Path) -> Vec<u8> {
        let read = |path: &Path| {
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        };
        let mut tar = Rootfs::default();
        for dir in ["bin", "usr", "usr/bin"] {
            tar.dir(dir, 0o755);
        }
        tar.dir("tmp", 0o1777);
        tar.file(
            "usr/bin/fwatchdog",
            &read(&binaries.join("watchdog")),
            0o755,
        );
        if self.with_echo_server {
            tar.file(
                "usr/bin/echo-server",
                &read(&binaries.join("echo-server")),
                0o755,
            );
        }
        let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
            panic!("reading {BUSYBOX}: {e}; install a static busybox (Debian: busybox-static)")
        });
        tar.file("bin/busybox", &busybox, 0o755);
        for applet in APPLETS.split_whitespace() {
            tar.symlink(&format!("bin/{applet}"), "busybox");
        }
        for file in &self.files {
            let path = file.path.trim_start_matches('/');
            assert!(!path.is_empty(), "an image file needs a path");
            tar.file(path, &file.contents, file.mode);
        }
        tar.finish()
    }

    /// Makes the image `tag` (`repository:tag`) with `labels`, using the binaries of
    /// [`static_binaries`]. Panics with the engine's error if it fails.
    pub async fn build(&self, docker: &Docker, tag: &str, labels: &HashMap<String, String>) {
        let binaries = tokio::task::spawn_blocking(static_binaries)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let rootfs = self.rootfs_tar(&binaries);
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(version)
            .changes(self.changes(labels))
            .build();
        let mut stream = docker.create_image(Some(options), Some(body_full(rootfs.into())), None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                panic!("importing image {tag}: {e}");
            }
        }
    }
}

/// `value` in double quotes, escaped for a `Dockerfile` instruction (no variable expansion).
fn quote(value: &str) -> String {
    assert!(!value.contains('\n'), "newline in image setting {value:?}");
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    format!("\"{escaped}\"")
}

/// A function image built for a test; it carries the test's label and goes with its
/// [`DockerGuard`].
#[derive(Clone, Debug)]
pub struct FunctionImage {
    /// The image reference, `ferry-test/<kind>:<test id>`.
    pub tag: String,
}

impl FunctionImage {
    /// Builds `spec` as `ferry-test/<kind>:<test id>`, labelled with the guard's test label.
    pub async fn build(guard: &DockerGuard, kind: &str, spec: &ImageSpec) -> FunctionImage {
        let tag = format!("ferry-test/{kind}:{}", guard.id());
        spec.build(guard.docker(), &tag, &guard.labels()).await;
        FunctionImage { tag }
    }

    /// [`ImageSpec::echo_http`]: `echo-server` behind the watchdog in `http` mode.
    pub async fn echo_http(guard: &DockerGuard) -> FunctionImage {
        FunctionImage::build(guard, "echo-http", &ImageSpec::echo_http()).await
    }

    /// [`ImageSpec::cat_streaming`]: `cat` behind the watchdog in `streaming` mode.
    pub async fn cat_streaming(guard: &DockerGuard) -> FunctionImage {
        FunctionImage::build(guard, "cat-streaming", &ImageSpec::cat_streaming()).await
    }

    /// [`ImageSpec::classic`]: `fprocess` behind the watchdog in `classic` mode.
    pub async fn classic(guard: &DockerGuard, fprocess: &str) -> FunctionImage {
        FunctionImage::build(guard, "classic", &ImageSpec::classic(fprocess)).await
    }

    /// [`ImageSpec::shell_serializing`]: a shell script behind the watchdog in `serializing`
    /// mode.
    pub async fn shell_serializing(guard: &DockerGuard, script: &str) -> FunctionImage {
        let spec = ImageSpec::shell_serializing(script);
        FunctionImage::build(guard, "shell-serializing", &spec).await
    }
}

/// The ready-made images under stable names, without the test label, for use outside tests
/// (`build-function-images`): `ferry/echo-http`, `ferry/cat-streaming`,
/// `ferry/shell-serializing`.
pub fn named_specs() -> Vec<(&'static str, ImageSpec)> {
    vec![
        ("ferry/echo-http", ImageSpec::echo_http()),
        ("ferry/cat-streaming", ImageSpec::cat_streaming()),
        (
            "ferry/shell-serializing",
            ImageSpec::shell_serializing(DEFAULT_HANDLER),
        ),
    ]
}

/// Builds `spec` as `tag` without any test label: an ordinary image that stays after the
/// process ends.
pub async fn build_named(docker: &Docker, tag: &str, spec: &ImageSpec) -> FunctionImage {
    spec.build(docker, tag, &HashMap::new()).await;
    FunctionImage {
        tag: tag.to_owned(),
    }
}

/// An in-memory root-filesystem tar being written.
struct Rootfs(tar::Builder<Vec<u8>>);

impl Default for Rootfs {
    fn default() -> Self {
        Rootfs(tar::Builder::new(Vec::new()))
    }
}

impl Rootfs {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn file(&mut self, path: &str, contents: &[u8], mode: u32) {
        let mut header = Self::header(tar::EntryType::Regular, mode, contents.len() as u64);
        self.0
            .append_data(&mut header, path, contents)
            .unwrap_or_else(|e| panic!("adding {path} to the image: {e}"));
    }

    fn dir(&mut self, path: &str, mode: u32) {
        let mut header = Self::header(tar::EntryType::Directory, mode, 0);
        self.0
            .append_data(&mut header, path, std::io::empty())
            .unwrap_or_else(|e| panic!("adding {path} to the image: {e}"));
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0
            .append_link(&mut header, path, target)
            .unwrap_or_else(|e| panic!("adding {path} to the image: {e}"));
    }

    fn finish(self) -> Vec<u8> {
        self.0
            .into_inner()
            .unwrap_or_else(|e| panic!("finishing the image tar: {e}"))
    }
}
