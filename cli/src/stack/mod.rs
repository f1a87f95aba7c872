//! OpenFaaS stack files (`stack.yml`), as faas-cli reads them.
//!
//! Reading one: the text goes through [`envsubst`] (`${VAR:-default}`), then serde-saphyr
//! parses it into [`Stack`] (anchors, aliases and merge keys `<<` resolved by the parser).
//! Every key is known: an unknown one is an error naming its line and column, not a silent
//! no-op (a misspelt `enviroment:` would otherwise deploy a function without its settings).
//! Top-level keys starting with `x-` are ignored, as in compose files, to hold anchors.
//! Each function's `environment_file`s (paths relative to the stack file) are read after
//! that; later files win, and files win over `environment`.

pub mod envsubst;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use types::{Function, Provider, Resources, Stack};

use crate::args::Selection;
use crate::error::{Error, Result};

/// The default stack files, in the order they are looked for.
pub const DEFAULT_FILES: [&str; 2] = ["stack.yaml", "stack.yml"];

/// A stack file read and checked, with where it was read from.
#[derive(Debug, Clone)]
pub struct LoadedStack {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub stack: Stack,
}

/// The stack file to use: `explicit`, else the first of [`DEFAULT_FILES`] that exists.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    DEFAULT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Reads, substitutes, parses and checks the stack file at `path`.
pub fn load(path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<LoadedStack> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Stack {
        path: path.to_path_buf(),
        message: format!("cannot read the stack file: {e}"),
    })?;
    let stack = parse(&text, path, lookup)?;
    Ok(LoadedStack {
        path: path.to_path_buf(),
        stack,
    })
}

/// [`load`] of text already read (`path` names it in errors and anchors `environment_file`).
pub fn parse(text: &str, path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Stack> {
    let bad = |message: String| Error::Stack {
        path: path.to_path_buf(),
        message,
    };
    let text = envsubst::substitute(text, lookup).map_err(bad)?;
    let mut stack: Stack = serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?;
    stack.check().map_err(bad)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for (name, function) in &mut stack.functions {
        read_environment_files(function, dir)
            .map_err(|message| bad(format!("function {name}: {message}")))?;
    }
    Ok(stack)
}

/// An `environment_file`: a YAML file with an `environment:` map.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentFile {
    environment: BTreeMap<String, String>,
}

/// Merges `function`'s `environment_file`s into its `environment` (files win, later first).
fn read_environment_files(function: &mut Function, dir: &Path) -> Result<(), String> {
    for file in &function.environment_file {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("environment_file {}: {e}", path.display()))?;
        let parsed: EnvironmentFile = serde_saphyr::from_str(&text)
            .map_err(|e| format!("environment_file {}: {e}", path.display()))?;
        function.environment.extend(parsed.environment);
    }
    Ok(())
}

impl LoadedStack {
    /// The functions `selection` picks, by name.
    pub fn select(&self, selection: &Selection) -> Result<Vec<(&str, &Function)>> {
        let matches = matcher(selection)?;
        let chosen: Vec<_> = self
            .stack
            .functions
            .iter()
            .filter(|(name, _)| matches(name))
            .map(|(n, f)| (n.as_str(), f))
            .collect();
        if chosen.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no function matches the filter",
                self.path.display()
            )));
        }
        Ok(chosen)
    }

    /// The folder the stack file is in (handlers are relative to it).
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }
}

/// Whether a function name is selected.
type Matcher = Box<dyn Fn(&str) -> bool>;

/// A predicate over function names for `--filter` (wildcards) or `--regex`.
fn matcher(selection: &Selection) -> Result<Matcher> {
    match (&selection.filter, &selection.regex) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "--filter and --regex cannot be used together".into(),
        )),
        (Some(glob), None) => {
            let glob = glob.clone();
            Ok(Box::new(move |name| wildcard(&glob, name)))
        }
        (None, Some(re)) => {
            let re =
                regex::Regex::new(re).map_err(|e| Error::Usage(format!("--regex {re:?}: {e}")))?;
            Ok(Box::new(move |name| re.is_match(name)))
        }
        (None, None) => Ok(Box::new(|_| true)),
    }
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` one.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests;
