//! `ferry build`, `ferry deploy` and `ferry up` (build, then deploy).
//!
//! Deploying creates each function (`POST /system/functions`) and updates it when it exists
//! (`409`: `PUT`), then, unless `--no-wait`, waits until it has a ready replica, so that an
//! `invoke` right after it finds one.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferry_proto::{FunctionDeployment, FunctionResources};

use crate::args::{BuildArgs, DeployArgs, UpArgs};
use crate::build::{self, BuildOptions};
use crate::client::{Client, Deployed};
use crate::error::{Error, Result};
use crate::stack::{Function, LoadedStack, Resources};
use crate::{Ctx, output};

use super::{duration, pairs};

/// `ferry build`: every selected function with a `lang` (and no `skip_build`).
pub(super) async fn build(ctx: &Ctx, args: &BuildArgs) -> Result<LoadedStack> {
    let stack = ctx.stack()?;
    let options = BuildOptions {
        watchdog_image: args.watchdog_image.clone(),
        labels: pairs(&args.labels, "--label")?.into_iter().collect(),
        build_args: pairs(&args.build_args, "--build-arg")?
            .into_iter()
            .collect::<HashMap<_, _>>(),
        no_cache: args.no_cache,
        quiet: args.quiet,
    };
    let docker = build::docker().await?;
    for (name, function) in stack.select(&args.selection)? {
        if function.skip_build {
            output::note(&format!("[{name}] skip_build: not built"));
            continue;
        }
        build::build(&docker, name, function, stack.dir(), &options).await?;
    }
    Ok(stack)
}

/// `ferry deploy`.
pub(super) async fn deploy(ctx: &Ctx, args: &DeployArgs) -> Result<()> {
    if let (Some(image), Some(name)) = (&args.image, &args.name) {
        let function = Function {
            image: Some(image.clone()),
            fprocess: args.fprocess.clone(),
            ..Function::default()
        };
        let client = ctx.client()?;
        let d = deployment(name, &function, args)?;
        return deploy_all(&client, vec![d], args).await;
    }
    let stack = ctx.stack()?;
    let client = ctx.client_for(Some(&stack))?;
    let mut list = Vec::new();
    for (name, function) in stack.select(&args.selection)? {
        list.push(deployment(name, function, args)?);
    }
    deploy_all(&client, list, args).await
}

/// `ferry up`.
pub(super) async fn up(ctx: &Ctx, args: &UpArgs) -> Result<()> {
    let stack = build(ctx, &args.build).await?;
    let client = ctx.client_for(Some(&stack))?;
    let deploy_args = DeployArgs {
        selection: args.build.selection.clone(),
        image: None,
        name: None,
        namespace: None,
        fprocess: None,
        env: Vec::new(),
        labels: Vec::new(),
        annotations: Vec::new(),
        secrets: Vec::new(),
        no_wait: args.no_wait,
        timeout: args.timeout.clone(),
    };
    let mut list = Vec::new();
    for (name, function) in stack.select(&args.build.selection)? {
        list.push(deployment(name, function, &deploy_args)?);
    }
    deploy_all(&client, list, &deploy_args).await
}

/// Deploys `list`, then waits for each unless `--no-wait`.
async fn deploy_all(
    client: &Client,
    list: Vec<FunctionDeployment>,
    args: &DeployArgs,
) -> Result<()> {
    let timeout = duration(&args.timeout, "--timeout")?;
    for d in &list {
        let how = match client.deploy(d).await? {
            Deployed::Created => "created",
            Deployed::Updated => "updated",
        };
        let reference = match d.namespace.as_str() {
            "" => d.service.clone(),
            ns => format!("{}.{ns}", d.service),
        };
        output::note(&format!(
            "ferry: {how} {}; URL: {}/function/{reference}",
            d.service,
            client.base()
        ));
    }
    if args.no_wait {
        return Ok(());
    }
    for d in &list {
        let ns = Some(d.namespace.as_str()).filter(|n| !n.is_empty());
        wait_ready(client, &d.service, ns, timeout).await?;
        output::note(&format!("ferry: {} is ready", d.service));
    }
    Ok(())
}

/// Polls the function until it has a ready replica, with doubling pauses up to a second.
async fn wait_ready(
    client: &Client,
    name: &str,
    ns: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let status = client.function(name, ns).await?;
        if status.available_replicas > 0 {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout(format!(
                "{} waiting for {name} to have a ready replica",
                ferry_proto::duration::format(timeout)
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The deployment of stack function `name`, with the command line's additions.
pub(crate) fn deployment(
    name: &str,
    f: &Function,
    args: &DeployArgs,
) -> Result<FunctionDeployment> {
    let image = f
        .image
        .clone()
        .ok_or_else(|| Error::Usage(format!("function {name}: no image")))?;
    let merge = |base: &BTreeMap<String, String>, extra: &[String], what: &str| {
        let mut map = base.clone();
        map.extend(pairs(extra, what)?);
        Ok::<_, Error>(map)
    };
    let mut secrets = f.secrets.clone();
    secrets.extend(args.secrets.iter().cloned());
    let d = FunctionDeployment {
        service: name.to_owned(),
        image,
        namespace: args
            .namespace
            .clone()
            .or_else(|| f.namespace.clone())
            .unwrap_or_default(),
        env_process: f.fprocess.clone().unwrap_or_default(),
        env_vars: merge(&f.environment, &args.env, "--env")?,
        constraints: f.constraints.clone(),
        secrets,
        labels: merge(&f.labels, &args.labels, "--label")?,
        annotations: merge(&f.annotations, &args.annotations, "--annotation")?,
        limits: f.limits.as_ref().map(resources),
        requests: f.requests.as_ref().map(resources),
        read_only_root_filesystem: f.readonly_root_filesystem,
    };
    d.validate()
        .map_err(|e| Error::Usage(format!("function {name}: {e}")))?;
    Ok(d)
}

fn resources(r: &Resources) -> FunctionResources {
    FunctionResources {
        memory: r.memory.clone().unwrap_or_default(),
        cpu: r.cpu.clone().unwrap_or_default(),
        other: BTreeMap::new(),
    }
}
