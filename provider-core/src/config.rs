//! Settings parsing both backends share.

/// A Docker object name or label value from a setting (`functions_network`, `instance`):
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn name_like(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        && v.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(v.to_string())
    } else {
        Err("use letters, digits, '-', '_' and '.'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::name_like;

    #[test]
    fn names() {
        assert!(name_like("ferry-functions").is_ok());
        assert!(name_like("-x").is_err());
        assert!(name_like("a b").is_err());
    }
}
