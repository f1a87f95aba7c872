//! `ferry new NAME --lang L`: the handler folder from a built-in template, and the stack
//! entry, in `NAME.yml` or appended to an existing stack file (`--append`).

use std::path::{Path, PathBuf};

use crate::Ctx;
use crate::args::NewArgs;
use crate::error::{Error, Result};
use crate::output;
use crate::stack;
use crate::templates::{self, TEMPLATES};

/// Runs `ferry new`.
pub(super) fn run(ctx: &Ctx, args: &NewArgs) -> Result<()> {
    if args.list {
        let rows: Vec<Vec<String>> = TEMPLATES
            .iter()
            .map(|t| vec![t.lang.to_owned(), t.summary.to_owned()])
            .collect();
        return output::stdout(&output::table(&["LANG", "TEMPLATE"], &rows));
    }
    let (Some(name), Some(lang)) = (&args.name, &args.lang) else {
        return Err(Error::Usage("ferry new NAME --lang LANG".into()));
    };
    ferry_proto::Name::new(name.as_str())
        .map_err(|e| Error::Usage(format!("function name {name:?}: {e}")))?;
    let template = templates::find(lang)?;
    let handler = args.handler.clone().unwrap_or_else(|| PathBuf::from(name));
    let image = match &args.prefix {
        Some(p) if !p.is_empty() => format!("{}/{name}:latest", p.trim_end_matches('/')),
        _ => format!("{name}:latest"),
    };
    let entry = entry(name, template.lang, &handler, &image);
    let file = match &args.append {
        Some(file) => {
            let text = appended(file, name, &entry, ctx)?;
            templates::write_handler(template, name, &handler)?;
            std::fs::write(file, text).map_err(Error::io(file))?;
            file.clone()
        }
        None => {
            let file = PathBuf::from(format!("{name}.yml"));
            if file.exists() {
                return Err(Error::Usage(format!(
                    "{} exists already: pass --append {0} to add the function to it",
                    file.display()
                )));
            }
            let gateway = crate::config::gateway_url(ctx.global.gateway.as_deref(), None, &ctx.env);
            let text = format!(
                "version: 1.0\nprovider:\n  name: openfaas\n  gateway: {gateway}\nfunctions:\n{entry}"
            );
            templates::write_handler(template, name, &handler)?;
            std::fs::write(&file, text).map_err(Error::io(&file))?;
            file
        }
    };
    output::note(&format!(
        "ferry: wrote {} ({} template) and {}; next: ferry up -f {}",
        handler.display(),
        template.lang,
        file.display(),
        file.display()
    ));
    Ok(())
}

/// The function's entry under `functions:`, indented by two spaces.
fn entry(name: &str, lang: &str, handler: &Path, image: &str) -> String {
    let handler = handler.display().to_string();
    let handler = if handler.starts_with('/') || handler.starts_with('.') {
        handler
    } else {
        format!("./{handler}")
    };
    format!("  {name}:\n    lang: {lang}\n    handler: {handler}\n    image: {image}\n")
}

/// `file`'s text with `entry` added, checked by parsing it: `functions:` must be the file's
/// last top-level key and must not hold `name` yet.
fn appended(file: &Path, name: &str, entry: &str, ctx: &Ctx) -> Result<String> {
    let lookup = |var: &str| ctx.env.get(var);
    let text = std::fs::read_to_string(file).map_err(Error::io(file))?;
    let before = stack::parse(&text, file, &lookup)?;
    if before.functions.contains_key(name) {
        return Err(Error::Usage(format!(
            "{}: function {name} exists already",
            file.display()
        )));
    }
    let indent = function_indent(&text).unwrap_or(2);
    let entry: String = entry
        .lines()
        .map(|l| format!("{}{}\n", " ".repeat(indent), &l[2..]))
        .collect();
    let mut new = text.clone();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&entry);
    let after = stack::parse(&new, file, &lookup)?;
    if after.functions.len() != before.functions.len() + 1 || !after.functions.contains_key(name) {
        return Err(Error::Usage(format!(
            "{}: cannot append to it (functions: must be its last section)",
            file.display()
        )));
    }
    Ok(new)
}

/// How far the first function under `functions:` is indented.
fn function_indent(text: &str) -> Option<usize> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("functions:"));
    lines.next()?;
    lines
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.len() - l.trim_start().len())
        .filter(|n| *n > 0)
}
