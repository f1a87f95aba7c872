//! `ferry logs NAME [--follow] [--since] [--tail]`: `GET /system/logs`, NDJSON lines of
//! [`LogMessage`] printed as `timestamp instance text` (or as they come with `--json`).

use std::time::SystemTime;

use ferry_proto::logs::LogMessage;
use futures_util::StreamExt as _;
use reqwest::Method;

use crate::args::LogsArgs;
use crate::client::{api_error, query_string};
use crate::error::{Error, Result};
use crate::{Ctx, output};

use super::{duration, split_name};

/// Runs `ferry logs`.
pub(super) async fn run(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    let (name, ns) = split_name(&args.function.name, args.function.namespace.as_deref());
    let mut query = vec![("name", name.to_owned())];
    if let Some(ns) = ns {
        query.push(("namespace", ns.to_owned()));
    }
    query.push(("follow", args.follow.to_string()));
    if let Some(since) = &args.since {
        query.push(("since", since_time(since)?));
    }
    if let Some(tail) = args.tail {
        query.push(("tail", tail.to_string()));
    }
    let path = format!("/system/logs{}", query_string(&query));
    let client = ctx.client()?;
    let response = client.send_raw(client.request(Method::GET, &path)).await?;
    if !response.status().is_success() {
        return Err(api_error("GET", &path, response).await);
    }
    let mut stream = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| Error::Unreachable {
            url: path.clone(),
            source,
        })?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            print_line(ctx.global.json, &line, &path)?;
        }
    }
    if !pending.is_empty() {
        print_line(ctx.global.json, &pending, &path)?;
    }
    Ok(())
}

/// One NDJSON line: as it is with `--json`, else `timestamp instance text`.
fn print_line(json: bool, line: &[u8], path: &str) -> Result<()> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return Ok(());
    }
    if json {
        return output::stdout(&format!("{text}\n"));
    }
    let message: LogMessage = serde_json::from_str(text).map_err(|e| Error::Protocol {
        path: path.to_owned(),
        message: format!("a log line that is not JSON: {e}"),
    })?;
    output::stdout(&format!(
        "{} {} {}\n",
        message.timestamp, message.instance, message.text
    ))
}

/// `--since`: an RFC 3339 time as it is, or a duration back from now.
fn since_time(value: &str) -> Result<String> {
    if ferry_proto::time::parse_rfc3339(value).is_some() {
        return Ok(value.to_owned());
    }
    let back = duration(value, "--since")?;
    let at = SystemTime::now()
        .checked_sub(back)
        .ok_or_else(|| Error::Usage(format!("--since {value:?} is too far back")))?;
    Ok(ferry_proto::time::rfc3339_seconds(at))
}
