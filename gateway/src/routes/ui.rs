//! The web dashboard at `/ui/`: static HTML, CSS and JavaScript modules (`gateway/ui/`)
//! embedded in the binary at build time, with no build step and no third-party code. The files
//! hold no data and are served without authentication, as the login form must load; every
//! figure the dashboard shows comes from the public API with the credentials the user gives
//! it (basic auth or an API token), under the same rules as any other client.
//!
//! `GET /` redirects to `/ui/` (`307`), as OpenFaaS's gateway does. Answers carry a strict
//! Content-Security-Policy (scripts, styles and connections to this origin only, no framing).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::GatewayError;

/// Every file of the dashboard: its path under `/ui/`, content type and bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("../../ui/index.html")),
    ("style.css", CSS, include_bytes!("../../ui/style.css")),
    ("js/api.js", JS, include_bytes!("../../ui/js/api.js")),
    ("js/app.js", JS, include_bytes!("../../ui/js/app.js")),
    ("js/chart.js", JS, include_bytes!("../../ui/js/chart.js")),
    ("js/dom.js", JS, include_bytes!("../../ui/js/dom.js")),
    (
        "js/metrics.js",
        JS,
        include_bytes!("../../ui/js/metrics.js"),
    ),
    (
        "js/views/calls.js",
        JS,
        include_bytes!("../../ui/js/views/calls.js"),
    ),
    (
        "js/views/dead_letters.js",
        JS,
        include_bytes!("../../ui/js/views/dead_letters.js"),
    ),
    (
        "js/views/deploy.js",
        JS,
        include_bytes!("../../ui/js/views/deploy.js"),
    ),
    (
        "js/views/function.js",
        JS,
        include_bytes!("../../ui/js/views/function.js"),
    ),
    (
        "js/views/functions.js",
        JS,
        include_bytes!("../../ui/js/views/functions.js"),
    ),
    (
        "js/views/history.js",
        JS,
        include_bytes!("../../ui/js/views/history.js"),
    ),
    (
        "js/views/invoke.js",
        JS,
        include_bytes!("../../ui/js/views/invoke.js"),
    ),
    (
        "js/views/recent_calls.js",
        JS,
        include_bytes!("../../ui/js/views/recent_calls.js"),
    ),
    (
        "js/views/login.js",
        JS,
        include_bytes!("../../ui/js/views/login.js"),
    ),
    (
        "js/views/secrets.js",
        JS,
        include_bytes!("../../ui/js/views/secrets.js"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`: to the dashboard.
pub(crate) async fn root() -> Redirect {
    Redirect::temporary("/ui/")
}

/// `GET /ui/`: the dashboard's page.
pub(crate) async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

/// `GET /ui/{*path}`: one of its files; `404` for anything else.
pub(crate) async fn file(Path(path): Path<String>) -> Response {
    serve(&path).unwrap_or_else(|e| e.into_response())
}

fn serve(path: &str) -> Result<Response, GatewayError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(name, _, _)| *name == path)
        .ok_or_else(|| GatewayError::RouteNotFound(format!("/ui/{path}")))?;
    let mut response = (StatusCode::OK, *bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load, so a new gateway's dashboard is never mixed with an old one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap();
                    on_disk.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn unknown_files_are_404() {
        assert!(serve("../Cargo.toml").is_err());
        assert!(serve("js/nope.js").is_err());
        assert_eq!(serve("js/app.js").unwrap().status(), StatusCode::OK);
    }
}
