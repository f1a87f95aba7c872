//! `ferry list`, `describe`, `remove` and `scale`.

use crate::args::{ListArgs, NameArgs, RemoveArgs, ScaleArgs};
use crate::error::{Error, Result};
use crate::{Ctx, output};

use super::split_name;

/// `ferry list [-v]`: name, invocations, replicas (and image, namespace, available).
pub(super) async fn list(ctx: &Ctx, args: &ListArgs) -> Result<()> {
    let functions = ctx.client()?.functions(args.namespace.as_deref()).await?;
    if ctx.global.json {
        return output::json(&functions);
    }
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            let mut row = vec![
                f.name.clone(),
                format!("{}", f.invocation_count),
                f.replicas.to_string(),
            ];
            if args.verbose {
                row.extend([
                    f.available_replicas.to_string(),
                    f.namespace.clone(),
                    f.image.clone(),
                ]);
            }
            row
        })
        .collect();
    let header: &[&str] = if args.verbose {
        &[
            "FUNCTION",
            "INVOCATIONS",
            "REPLICAS",
            "AVAILABLE",
            "NAMESPACE",
            "IMAGE",
        ]
    } else {
        &["FUNCTION", "INVOCATIONS", "REPLICAS"]
    };
    output::stdout(&output::table(header, &rows))
}

/// `ferry describe NAME`.
pub(super) async fn describe(ctx: &Ctx, args: &NameArgs) -> Result<()> {
    let (name, ns) = split_name(&args.name, args.namespace.as_deref());
    let client = ctx.client()?;
    let f = client.function(name, ns).await?;
    if ctx.global.json {
        return output::json(&f);
    }
    let reference = match f.namespace.as_str() {
        "" => f.name.clone(),
        ns => format!("{}.{ns}", f.name),
    };
    let mut rows = vec![
        ("Name", f.name.clone()),
        ("Namespace", f.namespace.clone()),
        (
            "Status",
            if f.available_replicas > 0 {
                "Ready"
            } else {
                "Not ready"
            }
            .to_owned(),
        ),
        ("Replicas", f.replicas.to_string()),
        ("Available replicas", f.available_replicas.to_string()),
        ("Invocations", format!("{}", f.invocation_count)),
        ("Image", f.image.clone()),
        ("Function process", f.env_process.clone()),
        ("URL", format!("{}/function/{reference}", client.base())),
        (
            "Async URL",
            format!("{}/async-function/{reference}", client.base()),
        ),
    ];
    let map = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(("Labels", map(&f.labels)));
    rows.push(("Annotations", map(&f.annotations)));
    rows.push(("Environment", map(&f.env_vars)));
    rows.push(("Secrets", f.secrets.join(", ")));
    let mut text = String::new();
    for (k, v) in rows {
        text.push_str(&format!("{:<20}{}\n", format!("{k}:"), v));
    }
    output::stdout(&text)
}

/// `ferry remove [NAME...]`: the names given, else the stack file's functions.
pub(super) async fn remove(ctx: &Ctx, args: &RemoveArgs) -> Result<()> {
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    let client = if args.names.is_empty() {
        let stack = ctx.stack()?;
        for (name, f) in stack.select(&args.selection)? {
            let ns = args.namespace.clone().or_else(|| f.namespace.clone());
            targets.push((name.to_owned(), ns));
        }
        ctx.client_for(Some(&stack))?
    } else {
        for n in &args.names {
            let (name, ns) = split_name(n, args.namespace.as_deref());
            targets.push((name.to_owned(), ns.map(str::to_owned)));
        }
        ctx.client()?
    };
    let mut missing = None;
    for (name, ns) in &targets {
        match client.remove(name, ns.as_deref()).await {
            Ok(()) => output::note(&format!("ferry: removed {name}")),
            Err(e @ Error::Api { status: 404, .. }) => {
                output::note(&format!("ferry: {name}: no such function"));
                missing = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    missing.map_or(Ok(()), Err)
}

/// `ferry scale NAME --replicas N`.
pub(super) async fn scale(ctx: &Ctx, args: &ScaleArgs) -> Result<()> {
    let (name, ns) = split_name(&args.function.name, args.function.namespace.as_deref());
    ctx.client()?.scale(name, ns, args.replicas).await?;
    output::note(&format!(
        "ferry: scaling {name} to {} replicas",
        args.replicas
    ));
    Ok(())
}
