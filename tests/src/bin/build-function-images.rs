//! Builds the harness's function images under stable names, without the test label, for
//! trying functions by hand (`docker run -p 8080:8080 ferry/echo-http`) or for `make images`:
//! `ferry/echo-http:latest`, `ferry/cat-streaming:latest`, `ferry/shell-serializing:latest`.
//!
//! The static binaries come from `$FERRY_STATIC_DIR`, else from a `cargo build` it runs.

use std::time::Instant;

use ferry_tests::images::named_specs;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let docker = ferry_tests::docker().await;
    for (name, spec) in named_specs() {
        let started = Instant::now();
        let tag = format!("{name}:latest");
        ferry_tests::build_named(&docker, &tag, &spec).await;
        println!("built {tag} in {:.1} s", started.elapsed().as_secs_f64());
    }
}
