//! `${VAR}` and `${VAR:-default}` in a stack file's text, as faas-cli's `envsubst` does
//! before parsing: `${VAR}` is VAR's value (empty when unset), `${VAR:-default}` the default
//! when VAR is unset or empty, `${VAR-default}` the default only when unset, and `$$` a
//! literal `$`. A bare `$VAR` is left alone (shell commands in `fprocess` keep theirs).
//! Substitutions never add lines, so parse errors keep pointing at the right line when values
//! hold no newline.

/// `text` with its variables replaced, looked up with `lookup`; an unterminated `${` is an
/// error naming its line.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body.find('}').ok_or_else(|| {
                let line = text[..text.len() - tail.len()].matches('\n').count() + 1;
                format!("line {line}: unterminated ${{ (a variable is written ${{NAME}})")
            })?;
            out.push_str(&expand(&body[..end], lookup));
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` body: `NAME`, `NAME:-default` or `NAME-default`.
fn expand(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some((name, default)) = body.split_once(":-") {
        return lookup(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned());
    }
    if let Some((name, default)) = body.split_once('-') {
        return lookup(name).unwrap_or_else(|| default.to_owned());
    }
    lookup(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::substitute;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_and_defaults() {
        let cases = [
            ("a ${SET} b", "a value b"),
            ("${UNSET}", ""),
            ("${UNSET:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${UNSET-dflt}", "dflt"),
            ("${SET:-dflt}", "value"),
            ("$$HOME $SET", "$HOME $SET"),
            ("price: 5$", "price: 5$"),
        ];
        for (input, want) in cases {
            assert_eq!(substitute(input, &env).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn unterminated_names_its_line() {
        let err = substitute("a: 1\nb: ${OOPS\n", &env).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
