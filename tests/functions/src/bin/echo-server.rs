//! `echo-server`: the HTTP test function. Listens on `<bind>:<port>` (env `bind`, default
//! `127.0.0.1`; env `port`, default `5000`) and echoes every request as JSON; see the
//! `ferry_test_functions` crate docs.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(default.into())
    };
    let addr = format!("{}:{}", var("bind", "127.0.0.1"), var("port", "5000"));
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("echo-server: cannot listen on {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    eprintln!("echo-server: listening on {addr}");
    let options = ferry_test_functions::Options::default();
    if let Err(error) = ferry_test_functions::serve(listener, options).await {
        eprintln!("echo-server: {error}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
