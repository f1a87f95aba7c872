//! Splitting `/function/{name}[.{ns}][/sub/path][?query]` into the function and the part the
//! function sees.

use http::uri::PathAndQuery;

use crate::error::GatewayError;

/// A function invocation path, split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FunctionPath<'a> {
    /// `name` or `name.namespace`, exactly as in the URL.
    pub(crate) function: &'a str,
    /// Everything after the name, raw (not decoded): `""`, `"/"`, `"/x/y/"`.
    pub(crate) sub_path: &'a str,
}

impl<'a> FunctionPath<'a> {
    /// Splits `path` (without the query) after `prefix` (e.g. `/function/`).
    pub(crate) fn parse(path: &'a str, prefix: &str) -> Result<Self, GatewayError> {
        let rest = path.strip_prefix(prefix).unwrap_or_default();
        let (function, sub_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if function.is_empty() {
            return Err(GatewayError::MissingName);
        }
        Ok(FunctionPath { function, sub_path })
    }

    /// What the function is asked for: the sub-path (`/` when there is none) and the raw
    /// query.
    pub(crate) fn upstream(&self, query: Option<&str>) -> Result<PathAndQuery, GatewayError> {
        if self.sub_path.is_empty() && query.is_none() {
            return Ok(PathAndQuery::from_static("/"));
        }
        let sub_path = if self.sub_path.is_empty() {
            "/"
        } else {
            self.sub_path
        };
        let mut s = String::with_capacity(sub_path.len() + query.map_or(0, |q| q.len() + 1));
        s.push_str(sub_path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        PathAndQuery::try_from(s).map_err(|e| GatewayError::Internal(format!("bad path: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(path_and_query: &str) -> String {
        let uri: http::Uri = path_and_query.parse().unwrap();
        let p = FunctionPath::parse(uri.path(), "/function/").unwrap();
        p.upstream(uri.query()).unwrap().to_string()
    }

    #[test]
    fn names_and_sub_paths() {
        let p = FunctionPath::parse("/function/echo", "/function/").unwrap();
        assert_eq!((p.function, p.sub_path), ("echo", ""));
        let p = FunctionPath::parse("/function/echo.dev/a/b/", "/function/").unwrap();
        assert_eq!((p.function, p.sub_path), ("echo.dev", "/a/b/"));
        let p = FunctionPath::parse("/async-function/echo/", "/async-function/").unwrap();
        assert_eq!((p.function, p.sub_path), ("echo", "/"));
        for empty in ["/function/", "/function//x", "/function"] {
            assert!(matches!(
                FunctionPath::parse(empty, "/function/"),
                Err(GatewayError::MissingName)
            ));
        }
    }

    #[test]
    fn the_function_sees_the_sub_path_and_raw_query() {
        assert_eq!(upstream("/function/f"), "/");
        assert_eq!(upstream("/function/f/"), "/");
        assert_eq!(upstream("/function/f/x/y/?q=1"), "/x/y/?q=1");
        assert_eq!(upstream("/function/f?a=%20b&c"), "/?a=%20b&c");
        assert_eq!(upstream("/function/f/a%2Fb"), "/a%2Fb");
    }
}
