//! Building function images on the local Docker engine, through its API (bollard), with
//! the build's progress on stderr. No registry is involved: the templates start from the
//! local image `ferry/watchdog` (`--watchdog-image`, passed as build argument
//! `WATCHDOG_IMAGE`), which `make up` builds.
//!
//! The build context is a tar made in memory: for `shell`, the template's Dockerfile and the
//! handler folder under `function/`; for `dockerfile`, the handler folder as it is; for
//! `rust`, the template's Dockerfile and the handler compiled on the host first (`cargo build
//! --release --target x86_64-unknown-linux-gnu` with `RUSTFLAGS=-C target-feature=+crt-static`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::stack::Function;
use crate::templates::{self, Template};

/// The target the rust template is compiled for.
pub const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// What every build of one `ferry build` shares.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `WATCHDOG_IMAGE`.
    pub watchdog_image: String,
    /// Labels of the images.
    pub labels: HashMap<String, String>,
    /// Build arguments from the command line (win over the stack file's).
    pub build_args: HashMap<String, String>,
    /// Ignore the layer cache.
    pub no_cache: bool,
    /// No progress.
    pub quiet: bool,
}

/// Connects to the Docker engine (`DOCKER_HOST`, else the local socket).
pub async fn docker() -> Result<Docker> {
    Ok(Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?)
}

/// Builds function `name` of the stack in `stack_dir` as its `image`.
pub async fn build(
    docker: &Docker,
    name: &str,
    function: &Function,
    stack_dir: &Path,
    options: &BuildOptions,
) -> Result<()> {
    let failed = |message: String| Error::Build {
        function: name.to_owned(),
        message,
    };
    let lang = function.lang.as_deref().ok_or_else(|| {
        failed("no lang: nothing to build (skip_build: true deploys as is)".into())
    })?;
    let template = templates::find(lang)?;
    let image = function
        .image
        .as_deref()
        .ok_or_else(|| failed("no image: name the image to build".into()))?;
    let handler = stack_dir.join(function.handler.as_deref().unwrap_or(name));
    if !handler.is_dir() {
        return Err(failed(format!(
            "handler folder {} is missing",
            handler.display()
        )));
    }
    if template.dockerfile.is_some() {
        check_watchdog_image(docker, &options.watchdog_image).await?;
    }
    let binary = if template.lang == "rust" {
        Some(compile_rust(&handler, options.quiet).map_err(failed)?)
    } else {
        None
    };
    let context = context(template, name, &handler, binary.as_deref()).map_err(failed)?;
    let mut args: HashMap<String, String> = function.build_args.clone().into_iter().collect();
    args.insert("WATCHDOG_IMAGE".into(), options.watchdog_image.clone());
    args.extend(options.build_args.clone());
    let query = BuildImageOptionsBuilder::new()
        .t(image)
        .rm(true)
        .forcerm(true)
        .nocache(options.no_cache)
        .buildargs(&args)
        .labels(&options.labels)
        .build();
    progress(
        options.quiet,
        &format!("[{name}] building {image} ({lang})\n"),
    );
    let mut stream = docker.build_image(query, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| failed(e.to_string()))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(failed(detail));
        }
        if let Some(line) = info.stream.filter(|s| !s.trim().is_empty()) {
            progress(options.quiet, &format!("[{name}] {}", line.trim_end()));
            progress(options.quiet, "\n");
        }
    }
    progress(options.quiet, &format!("[{name}] built {image}\n"));
    Ok(())
}

fn progress(quiet: bool, text: &str) {
    if !quiet {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// Fails with a clear message when the watchdog image is not on the engine.
async fn check_watchdog_image(docker: &Docker, image: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(Error::Build {
            function: image.to_owned(),
            message: format!(
                "the watchdog image {image} is not on this Docker engine: `make up` builds \
                 ferry/watchdog:latest (or pass --watchdog-image)"
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Compiles the rust handler in `dir`; the path of its static binary.
fn compile_rust(dir: &Path, quiet: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = dir.join("target");
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", RUST_TARGET])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The explicit --target keeps RUSTFLAGS off build scripts and proc macros.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if quiet {
        command.arg("--quiet");
    }
    progress(
        quiet,
        &format!("compiling {}: {command:?}\n", dir.display()),
    );
    let status = command.status().map_err(|e| {
        format!(
            "running {}: {e} (is Rust installed?)",
            cargo.to_string_lossy()
        )
    })?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let binary = target_dir.join(RUST_TARGET).join("release").join("handler");
    if !binary.is_file() {
        return Err(format!("cargo built no {}", binary.display()));
    }
    Ok(binary)
}

/// The build context of function `name`, as a tar.
fn context(
    template: &Template,
    name: &str,
    handler: &Path,
    binary: Option<&Path>,
) -> Result<Vec<u8>, String> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let err = |e: std::io::Error| e.to_string();
    match (template.dockerfile, binary) {
        (None, _) => tar.append_dir_all(".", handler).map_err(err)?,
        (Some(dockerfile), Some(binary)) => {
            append(
                &mut tar,
                "Dockerfile",
                templates::render(dockerfile, name).as_bytes(),
                0o644,
            )?;
            tar.append_path_with_name(binary, "handler").map_err(err)?;
        }
        (Some(dockerfile), None) => {
            append(
                &mut tar,
                "Dockerfile",
                templates::render(dockerfile, name).as_bytes(),
                0o644,
            )?;
            tar.append_dir_all("function", handler).map_err(err)?;
        }
    }
    tar.into_inner().map_err(err)
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), String> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    tar.append_data(&mut header, path, data)
        .map_err(|e| e.to_string())
}
