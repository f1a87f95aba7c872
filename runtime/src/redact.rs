//! URLs made safe to log and to return in error bodies.
//!
//! A URL may carry a secret: user-info (`nats://user:password@nats:4222`, a NATS token as in
//! `nats://token@nats:4222`, `http://user:password@provider:8081`) or, for callback URLs, a
//! token in the query string or fragment (`https://hooks.example.com/cb?token=...`). Every
//! place that logs such a URL or puts it in a response (an unauthenticated `/healthz` `503`,
//! an error message) passes it through one of the two functions here:
//!
//! - [`url`]: the user-info becomes `***`; scheme, host, port, path, query and fragment stay
//!   (for the service URLs of the configuration: `nats_url`, `functions_provider_url`). A URL
//!   without user-info is returned as written;
//! - [`callback_url`]: the same, and the query string and fragment are dropped too.
//!
//! Parsing is the `url` crate's, the parser async-nats and reqwest use, so a URL is split
//! into user-info and host exactly as the client that uses it splits it. A value that does
//! not parse becomes [`INVALID`]: nothing of it is echoed. A value without `://` is read as
//! an address such as `user:password@host:4222` (async-nats adds `nats://` to those), and a
//! comma-separated list of URLs is redacted item by item.
//!
//! The call-status records (`GET /system/async-calls/<id>`) keep the full callback URL: they
//! are the submitter's own view, behind `/system/*`'s basic auth.

use url::Url;

/// What replaces a URL's user-info.
pub const HIDDEN: &str = "***";

/// What a value that is not a URL becomes.
pub const INVALID: &str = "<invalid url>";

/// Scheme put in front of a value without one while it is parsed (and taken off again).
const PLACEHOLDER: &str = "redacted";

/// `raw` with its user-info (`user:password@`, `token@`) replaced by `***@`, each item of a
/// comma-separated list alike; [`INVALID`] for an item that does not parse.
pub fn url(raw: &str) -> String {
    raw.split(',')
        .map(|item| redact(item, false))
        .collect::<Vec<_>>()
        .join(",")
}

/// `raw` as [`url`] makes it, without query string and fragment: what of a callback URL may
/// be logged.
pub fn callback_url(raw: &str) -> String {
    redact(raw, true)
}

fn redact(raw: &str, drop_query: bool) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        return INVALID.to_string();
    }
    let schemeless = !raw.contains("://");
    let parsed = if schemeless {
        Url::parse(&format!("{PLACEHOLDER}://{raw}"))
    } else {
        Url::parse(raw)
    };
    let Ok(mut url) = parsed else {
        return INVALID.to_string();
    };
    let user_info = !url.username().is_empty() || url.password().is_some();
    if !user_info && !drop_query {
        // Nothing to hide: the value as written (the parser would normalise it).
        return raw.to_string();
    }
    if drop_query {
        url.set_query(None);
        url.set_fragment(None);
    }
    if user_info && (url.set_password(None).is_err() || url.set_username(HIDDEN).is_err()) {
        return INVALID.to_string();
    }
    let text = String::from(url);
    if schemeless {
        text.strip_prefix(&format!("{PLACEHOLDER}://"))
            .map(str::to_string)
            .unwrap_or_else(|| INVALID.to_string())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_hidden_and_the_rest_kept() {
        assert_eq!(url("nats://user:s3cret@nats:4222"), "nats://***@nats:4222");
        assert_eq!(url("nats://tok3n@nats:4222"), "nats://***@nats:4222");
        assert_eq!(url("nats://:s3cret@nats"), "nats://***@nats");
        assert_eq!(
            url("http://u:p%40ss@provider:8081/api?x=1#f"),
            "http://***@provider:8081/api?x=1#f"
        );
    }

    #[test]
    fn urls_without_user_info_are_unchanged() {
        assert_eq!(url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(url("http://provider:8081"), "http://provider:8081");
        assert_eq!(url("tls://nats.example.com"), "tls://nats.example.com");
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(url("nats://u:p@[::1]:4222"), "nats://***@[::1]:4222");
        assert_eq!(url("http://[fd00::2]:8081/x"), "http://[fd00::2]:8081/x");
    }

    #[test]
    fn addresses_without_a_scheme_and_lists() {
        assert_eq!(url("user:pass@nats:4222"), "***@nats:4222");
        assert_eq!(url("nats:4222"), "nats:4222");
        assert_eq!(
            url("nats://a:b@n1:4222,nats://c@n2:4222"),
            "nats://***@n1:4222,nats://***@n2:4222"
        );
    }

    #[test]
    fn what_does_not_parse_is_not_echoed() {
        for bad in [
            "http://us er:pa ss@exa mple.com",
            "nats://h:99999",
            "",
            "::",
        ] {
            assert_eq!(url(bad), INVALID, "{bad:?}");
        }
        assert_eq!(callback_url("http://[::1"), INVALID);
    }

    #[test]
    fn callback_urls_lose_query_fragment_and_user_info() {
        assert_eq!(
            callback_url("https://hooks.example.com/cb?token=SECRET123#frag"),
            "https://hooks.example.com/cb"
        );
        assert_eq!(
            callback_url("http://u:p@127.0.0.1:9000/cb?token=x"),
            "http://***@127.0.0.1:9000/cb"
        );
        assert_eq!(
            callback_url("http://[::1]:9000/a,b?t=1"),
            "http://[::1]:9000/a,b"
        );
    }
}
