//! `GET /system/logs?name=&namespace=&instance=&tail=&since=&follow=`: a function's output as
//! NDJSON, one [`ferry_proto::logs::LogMessage`] per line, flushed line by line.
//!
//! Lines come from the Docker logs API (stdout and stderr, with the engine's timestamps) of
//! every container of the function, or of the one whose id starts with `instance`.
//! `instance` is the short (12-character) container id, `timestamp` the engine's RFC 3339
//! time with nanoseconds, `text` the line without its newline.
//!
//! First the lines already written, merged across containers by time: with `tail=N` (N > 0)
//! the last N of them, with `since` only those at or after that time. With `follow=true` the
//! stream then stays open: new lines of those containers, and of containers that start later,
//! in the order they arrive, until the client disconnects or the function is deleted.
//!
//! Errors: unknown function → 404; `instance` matching no container → 404; a missing `name`
//! or a `tail`, `since` or `follow` that does not parse → 400 (OpenFaaS's provider uses 422
//! for the latter; ferry answers 400 like every other invalid request).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use bollard::Docker;
use ferry_proto::FunctionRef;
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::error::ProviderError;
use crate::parts::Parts;
use lines::{Line, Lines, container_lines};

/// How often a following stream looks for new containers of the function.
const RESCAN: Duration = Duration::from_secs(1);

#[cfg(test)]
use ferry_proto::logs::LogMessage;
pub use ferry_provider_core::logs::LogQuery;

/// `GET /system/logs`, with the query's parameters `q`.
pub(crate) async fn logs(
    parts: Arc<Parts>,
    q: &HashMap<String, String>,
) -> Result<Response, ProviderError> {
    let query = LogQuery::parse::<ProviderError>(q)?;
    let f = &query.function;
    if parts.store.get(f).is_none() {
        return Err(ProviderError::NotFound(f.to_string()));
    }
    let ids: Vec<String> = parts
        .engine
        .replicas(Some(f))
        .await?
        .into_iter()
        .map(|(_, r)| r.id)
        .filter(|id| query.wants(id))
        .collect();
    if let (Some(instance), true) = (&query.instance, ids.is_empty()) {
        return Err(ProviderError::InstanceNotFound {
            function: f.to_string(),
            instance: instance.clone(),
        });
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(produce(parts, query, ids, tx));
    Ok(ferry_provider_core::logs::ndjson_response(rx))
}

/// Writes the history, then (with `follow`) new lines, to `tx` until the receiver goes.
async fn produce(parts: Arc<Parts>, q: LogQuery, ids: Vec<String>, tx: mpsc::Sender<Bytes>) {
    let docker = parts.engine.client().clone();
    let f = q.function.clone();
    let send = |id: &str, line: Line| tx.send(encode(&f, id, line));

    // History: each container's lines are in time order; merge them.
    let mut streams: Vec<Lines> = ids
        .iter()
        .map(|id| container_lines(&docker, id, q.tail, q.since, false))
        .collect();
    let mut heads = Vec::with_capacity(streams.len());
    for s in &mut streams {
        heads.push(s.next().await);
    }
    let mut last: HashMap<&str, OffsetDateTime> = HashMap::new();
    let mut kept: VecDeque<(&str, Line)> = VecDeque::new();
    while let Some(i) = (0..heads.len())
        .filter(|i| heads[*i].is_some())
        .min_by_key(|i| heads[*i].as_ref().map(|l| l.at))
    {
        let line = heads[i].take().expect("picked a head");
        heads[i] = streams[i].next().await;
        let id = ids[i].as_str();
        last.insert(id, line.at);
        match q.tail {
            Some(n) => {
                kept.push_back((id, line));
                if kept.len() as u64 > n {
                    kept.pop_front();
                }
            }
            None if send(id, line).await.is_err() => return,
            None => {}
        }
    }
    for (id, line) in kept {
        if send(id, line).await.is_err() {
            return;
        }
    }
    if !q.follow {
        return;
    }

    // Follow: every container from where its history ended, and new containers from their
    // first line.
    let mut tasks = tokio::task::JoinSet::new();
    for id in &ids {
        let after = last.get(id.as_str()).copied();
        tasks.spawn(follow(
            docker.clone(),
            q.clone(),
            id.clone(),
            after,
            tx.clone(),
        ));
    }
    let mut known: HashSet<String> = ids.iter().cloned().collect();
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            _ = tokio::time::sleep(RESCAN) => {}
        }
        while tasks.try_join_next().is_some() {}
        if parts.store.get(&f).is_none() {
            break;
        }
        let Ok(now) = parts.engine.replicas(Some(&f)).await else {
            continue;
        };
        for (_, r) in now {
            if q.wants(&r.id) && known.insert(r.id.clone()) {
                tasks.spawn(follow(docker.clone(), q.clone(), r.id, None, tx.clone()));
            }
        }
    }
    // Dropping `tasks` aborts the followers and closes their Docker streams.
    tracing::debug!(function = %f, "log stream closed");
}

/// Streams one container's new lines (those after `after`) to `tx`.
async fn follow(
    docker: Docker,
    q: LogQuery,
    id: String,
    after: Option<OffsetDateTime>,
    tx: mpsc::Sender<Bytes>,
) {
    let from = after.or(q.since);
    let mut lines = container_lines(&docker, &id, None, from, true);
    while let Some(line) = lines.next().await {
        if after.is_some_and(|a| line.at <= a) {
            continue;
        }
        if tx.send(encode(&q.function, &id, line)).await.is_err() {
            return;
        }
    }
}

fn encode(f: &FunctionRef, id: &str, line: Line) -> Bytes {
    ferry_provider_core::logs::encode(f, id, line.timestamp, line.text)
}

mod lines;

#[cfg(test)]
mod tests;
