//! What commands print: JSON (`--json`, pretty, keys in the wire types' order, one trailing
//! newline) or aligned text tables, on stdout; progress and messages go to stderr.

use std::io::Write as _;

use crate::error::{Error, Result};

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Protocol {
        path: "stdout".into(),
        message: e.to_string(),
    })?;
    stdout(&format!("{text}\n"))
}

/// Writes `text` to stdout (a closed pipe is not an error worth a panic).
pub fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::io("stdout"))
}

/// A message on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// `rows` under `header`, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_pads_columns() {
        let t = super::table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
