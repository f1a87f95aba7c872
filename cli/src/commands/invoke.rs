//! `ferry invoke NAME`: the body from stdin (none when stdin is a terminal), headers, query
//! and method from the options.
//!
//! Sync: the function's answer goes to stdout; an error status of the function exits 6, an
//! error the gateway made itself (`X-OpenFaaS-Internal`, e.g. no such function) is an API
//! error. `--async`: the call id goes to stdout; with `--wait`, `GET
//! /system/async-calls/{id}` is followed until the call is final and its status printed
//! (exit 6 unless it `succeeded`).

use std::io::{IsTerminal as _, Read as _};
use std::time::{Duration, Instant};

use ferry_proto::calls::{CallState, CallStatus};
use ferry_proto::headers;
use futures_util::StreamExt as _;
use reqwest::Method;

use crate::args::InvokeArgs;
use crate::client::{Client, api_error, encode, query_string};
use crate::error::{Error, Result};
use crate::{Ctx, output};

use super::{duration, pairs, split_name};

/// Runs `ferry invoke`.
pub(super) async fn run(ctx: &Ctx, args: &InvokeArgs) -> Result<()> {
    let (name, ns) = split_name(&args.function.name, args.function.namespace.as_deref());
    let reference = ns.map_or_else(|| name.to_owned(), |ns| format!("{name}.{ns}"));
    let query: Vec<(String, String)> = pairs(&args.query, "--query")?;
    let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let route = if args.r#async {
        "async-function"
    } else {
        "function"
    };
    let path = format!("/{route}/{}{}", encode(&reference), query_string(&query));
    let method = Method::from_bytes(args.method.to_uppercase().as_bytes())
        .map_err(|_| Error::Usage(format!("--method {:?} is not a method", args.method)))?;
    let client = ctx.client()?;
    let mut request = client
        .request(method.clone(), &path)
        .header(reqwest::header::CONTENT_TYPE, &args.content_type);
    for (k, v) in pairs(&args.headers, "--header")? {
        request = request.header(k, v);
    }
    if let Some(url) = &args.callback_url {
        request = request.header(headers::CALLBACK_URL, url);
    }
    let body = read_stdin()?;
    let response = client.send_raw(request.body(body)).await?;
    if response.headers().contains_key(headers::OPENFAAS_INTERNAL)
        && !response.status().is_success()
    {
        return Err(api_error(method.as_str(), &path, response).await);
    }
    if args.r#async {
        return submitted(ctx, &client, args, &path, response).await;
    }
    let status = response.status();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| Error::Unreachable {
            url: path.clone(),
            source,
        })?;
        output::stdout(&String::from_utf8_lossy(&chunk))?;
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(Error::FunctionFailed(format!(
            "{reference} answered {status}"
        )))
    }
}

/// The body: stdin, unless it is a terminal.
fn read_stdin() -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        stdin
            .lock()
            .read_to_end(&mut body)
            .map_err(Error::io("stdin"))?;
    }
    Ok(body)
}

/// After an async submission: the call id, and with `--wait` the final status.
async fn submitted(
    ctx: &Ctx,
    client: &Client,
    args: &InvokeArgs,
    path: &str,
    response: reqwest::Response,
) -> Result<()> {
    if response.status() != reqwest::StatusCode::ACCEPTED {
        return Err(api_error("POST", path, response).await);
    }
    let id = response
        .headers()
        .get(headers::CALL_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol {
            path: path.to_owned(),
            message: "202 without X-Call-Id".into(),
        })?
        .to_owned();
    output::note(&format!(
        "ferry: function submitted asynchronously, call id {id}"
    ));
    if !args.wait {
        return output::stdout(&format!("{id}\n"));
    }
    let status = wait_final(client, &id, duration(&args.timeout, "--timeout")?).await?;
    if ctx.global.json {
        output::json(&status)?;
    } else {
        output::stdout(&summary(&status))?;
    }
    if status.state == CallState::Succeeded {
        Ok(())
    } else {
        Err(Error::FunctionFailed(format!(
            "call {id} ended {}",
            status.state.as_str()
        )))
    }
}

/// Follows call `id` until it is final.
pub(crate) async fn wait_final(client: &Client, id: &str, timeout: Duration) -> Result<CallStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let status = client.call(id).await?;
        if status.state.is_final() {
            return Ok(status);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout(format!(
                "{} waiting for call {id} (still {})",
                ferry_proto::duration::format(timeout),
                status.state.as_str()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A call's status in a few lines.
pub(crate) fn summary(s: &CallStatus) -> String {
    let mut rows = vec![
        ("Call id", s.call_id.clone()),
        ("Function", s.function.clone()),
        ("State", s.state.as_str().to_owned()),
        ("Attempts", format!("{}/{}", s.attempts, s.max_attempts)),
        ("Submitted", s.submitted_at.clone()),
    ];
    if let Some(code) = s.last_status {
        rows.push(("Last status", code.to_string()));
    }
    if let Some(d) = s.duration_seconds {
        rows.push(("Duration", format!("{d:.3}s")));
    }
    if let Some(e) = &s.last_error {
        rows.push(("Last error", e.clone()));
    }
    if let Some(cb) = &s.callback {
        let state = serde_json::to_value(cb.state).unwrap_or_default();
        let state = state.as_str().unwrap_or_default().to_owned();
        rows.push(("Callback", format!("{} ({state})", cb.url)));
    }
    rows.iter()
        .map(|(k, v)| format!("{:<13}{v}\n", format!("{k}:")))
        .collect()
}
