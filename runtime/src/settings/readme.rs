//! The README's settings tables, checked against the declarations: each service has a unit
//! test that calls [`differences`] with `README.md` and its settings struct, so the table
//! (the documented source: every setting with its default) and `--help` (the declaration)
//! list the same settings, aliases and defaults.
//!
//! A table is the first one after the heading ``### `<service>` ``, one row per setting or
//! per group of settings: ``| `name` / `alias` | `default` ... | meaning |`` or
//! ``| `a`, `b` | `default of a`, `default of b` | meaning |``. A declared default must be the
//! first quoted value of its default cell; an empty default (an empty list) reads `empty`.

use std::collections::BTreeMap;

use clap::{Args, Command};

/// Variables that a service reads through a library rather than its declaration: they are
/// documented, but have no flag.
pub const READ_BY_LIBRARIES: &[&str] = &[
    // tracing-subscriber's filter.
    "RUST_LOG",
    // bollard's engine address.
    "DOCKER_HOST",
];

/// One documented setting: its names (the first is the variable, the others its older
/// names) and its default cell's value for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    names: Vec<String>,
    default: Option<String>,
    default_text: String,
}

/// Panics with every difference between `readme`'s table of `service` and the declaration
/// of `A` (each service's test that its README table and `--help` agree).
pub fn assert_agrees<A: Args>(readme: &str, service: &str) {
    let problems = differences::<A>(readme, service);
    assert!(
        problems.is_empty(),
        "README.md and --help differ:\n{}",
        problems.join("\n")
    );
}

/// What differs between `readme`'s table of `service` and the declaration of `A`; empty
/// when they agree.
pub fn differences<A: Args>(readme: &str, service: &str) -> Vec<String> {
    let rows = match table(readme, service) {
        Ok(rows) => rows,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    let mut documented: BTreeMap<String, Row> =
        rows.into_iter().map(|r| (r.names[0].clone(), r)).collect();
    let command = A::augment_args(Command::new(service.to_string()));
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(name) = arg.get_env().and_then(|e| e.to_str()) else {
            problems.push(format!("--{} has no variable", arg.get_id()));
            continue;
        };
        let Some(row) = documented.remove(name) else {
            problems.push(format!(
                "`{name}` is declared but not in the README's table"
            ));
            continue;
        };
        let aliases: Vec<&str> = arg.get_visible_aliases().unwrap_or_default();
        if row.names[1..] != aliases {
            problems.push(format!(
                "`{name}`: README names {:?}, declared aliases {aliases:?}",
                &row.names[1..]
            ));
        }
        let declared = arg
            .get_default_values()
            .first()
            .map(|d| d.to_string_lossy());
        match declared.as_deref() {
            Some("") if row.default_text.starts_with("empty") => {}
            Some(declared) if row.default.as_deref() != Some(declared) => problems.push(format!(
                "`{name}`: README default {:?}, declared {declared:?}",
                row.default_text
            )),
            _ => {}
        }
    }
    for name in documented.keys() {
        if !READ_BY_LIBRARIES.contains(&name.as_str()) {
            problems.push(format!(
                "`{name}` is in the README's table but not declared"
            ));
        }
    }
    problems
}

/// The rows of the first table after ``### `service` ``.
fn table(readme: &str, service: &str) -> Result<Vec<Row>, String> {
    let heading = format!("### `{service}`");
    let mut lines = readme.lines().skip_while(|l| l.trim() != heading);
    if lines.next().is_none() {
        return Err(format!("no heading {heading} in the README"));
    }
    let table = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2);
    let mut rows = Vec::new();
    for line in table {
        let cells: Vec<&str> = line.split(" | ").collect();
        let (Some(names), Some(defaults)) = (cells.first(), cells.get(1)) else {
            return Err(format!("not a settings row: {line}"));
        };
        let names = names.trim_start_matches('|').trim();
        let values = quoted(defaults);
        if names.contains(" / ") {
            rows.push(Row {
                names: quoted(names),
                default: values.first().cloned(),
                default_text: defaults.trim().to_string(),
            });
            continue;
        }
        let names = quoted(names);
        let several = names.len() > 1;
        let texts: Vec<&str> = match several {
            true => defaults.split(", ").collect(),
            false => vec![defaults],
        };
        for (i, name) in names.into_iter().enumerate() {
            let text = texts.get(i).copied().unwrap_or_default().trim();
            rows.push(Row {
                names: vec![name],
                default: quoted(text).first().cloned(),
                default_text: text.to_string(),
            });
        }
    }
    Ok(rows)
}

/// The `quoted` values of a cell, in order.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Two {
        /// A.
        #[arg(long = "a", env = "a", visible_alias = "old_a", default_value = "1s")]
        a: String,
        /// B.
        #[arg(long = "b", env = "b", default_value = "", hide_default_value = true)]
        b: String,
        /// C.
        #[arg(long = "c", env = "c")]
        c: Option<String>,
    }

    const README: &str = "\
### `svc`

| variable | default | meaning |
|---|---|---|
| `a` / `old_a` | `1s` (one second) | a |
| `b`, `c` | empty, unset | b and c |
| `RUST_LOG` | `info` | logs |

### `other`
";

    #[test]
    fn an_agreeing_table_has_no_differences() {
        assert_eq!(differences::<Two>(README, "svc"), Vec::<String>::new());
    }

    #[test]
    fn differences_are_named() {
        let readme = README
            .replace("`1s` (one", "`2s` (two")
            .replace(" / `old_a`", "")
            .replace("| `b`, `c` | empty, unset |", "| `b`, `d` | empty, unset |");
        let found = differences::<Two>(&readme, "svc").join("\n");
        for part in [
            "README default \"`2s`",
            "aliases [\"old_a\"]",
            "`c` is declared",
            "`d` is in",
        ] {
            assert!(found.contains(part), "{part} in {found}");
        }
        assert_eq!(differences::<Two>(README, "none").len(), 1);
    }
}
