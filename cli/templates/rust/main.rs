//! The {{name}} function: the watchdog runs this once per request (mode serializing); the
//! request body is stdin, stdout is the response. The method, path and query are in the
//! environment (`Http_Method`, `Http_Path`, `Http_Query`).

use std::io::{Read, Write};

fn main() {
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .expect("reading the request body");
    let method = std::env::var("Http_Method").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "Hello from {{name}} (Rust), {method} with {} bytes: {}", body.len(), body.trim())
        .expect("writing the response");
}
