//! `gateway` started in-process for a test, on a free loopback port; helpers for its
//! call-status API; and stand-ins for what the queue-worker writes (status changes, dead
//! letters), so the gateway's side can be tested without a worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream::Stream};
use ferry_proto::calls::{Attempt, CallState, CallStatus, DeadLetter, DeadLetterReason};
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM, STATUS_BUCKET, dead_letter_subject};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use tokio::sync::oneshot;

use crate::NatsServer;
use tokio::task::JoinHandle;

/// A running gateway; stops on drop.
pub struct TestGateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// A gateway in front of the provider at `provider_url` (e.g. `provider.url("")`) and the
    /// NATS server at `nats_url`, with extra (or overriding) environment variables such as
    /// `[("upstream_timeout", "1s")]`. The provider and NATS need not be up.
    pub async fn start(provider_url: &str, nats_url: &str, extra: &[(&str, &str)]) -> TestGateway {
        let mut env: HashMap<String, String> = [
            ("functions_provider_url", provider_url),
            ("nats_url", nats_url),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = ferry_gateway::Config::from_env(&env).expect("test gateway config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("gateway address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = ferry_gateway::run(config, listener, shutdown).await {
                panic!("gateway failed: {e}");
            }
        });
        TestGateway {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET /system/async-calls/{call_id}`: the call's status, `None` on `404`; panics on any
    /// other answer.
    pub async fn call_status(&self, call_id: &str) -> Option<CallStatus> {
        let url = self.url(&format!("/system/async-calls/{call_id}"));
        let resp = crate::http_client()
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        match resp.status().as_u16() {
            200 => Some(resp.json().await.expect("a CallStatus")),
            404 => None,
            other => panic!(
                "GET {url}: {other} {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }

    /// Polls the call's status every 100 ms until it is in `state`; returns it. Panics after
    /// `timeout`, quoting the last status seen.
    pub async fn wait_for_state(
        &self,
        call_id: &str,
        state: CallState,
        timeout: Duration,
    ) -> CallStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.call_status(call_id).await;
            match status {
                Some(s) if s.state == state => return s,
                _ if Instant::now() >= deadline => panic!(
                    "call {call_id} not {} after {timeout:?}; last status: {status:?}",
                    state.as_str()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Asks the gateway to shut down gracefully and waits until it has (in-flight requests
    /// finish first).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The calls stream and the call-status bucket, once the gateway (or a worker) created them.
pub async fn calls_and_statuses(nats: &NatsServer) -> (Stream, kv::Store) {
    let js = jetstream::new(nats.connect().await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let (Ok(calls), Ok(statuses)) = (
            js.get_stream(CALLS_STREAM).await,
            js.get_key_value(STATUS_BUCKET).await,
        ) {
            return (calls, statuses);
        }
        assert!(
            Instant::now() < deadline,
            "the calls stream and status bucket were not created within 60s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Changes call `call_id`'s status record with `change` (compare-and-set, as the worker
/// does); returns the new record. Panics if there is none.
pub async fn rewrite_status(
    statuses: &kv::Store,
    call_id: &str,
    change: impl FnOnce(&mut CallStatus),
) -> CallStatus {
    let entry = statuses
        .entry(call_id)
        .await
        .expect("reading a status record")
        .unwrap_or_else(|| panic!("call {call_id} has no status record"));
    let mut status: CallStatus = serde_json::from_slice(&entry.value).expect("a CallStatus");
    change(&mut status);
    let value = serde_json::to_vec(&status).expect("encoding a CallStatus");
    statuses
        .update(call_id, value.into(), entry.revision)
        .await
        .expect("rewriting a status record");
    status
}

/// The messages of `stream` whose `Ferry-Call-Id` is `call_id`, oldest first.
pub async fn messages_of(stream: &Stream, call_id: &str) -> Vec<jetstream::message::StreamMessage> {
    let state = stream.get_info().await.expect("stream info").state;
    let mut found = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(sequence).await {
            if m.headers.get(CALL_ID_HEADER).map(|v| v.as_str()) == Some(call_id) {
                found.push(m);
            }
        }
    }
    found
}

/// Dead-letters queued call `call_id` the way the queue-worker does after `statuses.len()`
/// failed attempts: its message leaves the calls stream, a [`DeadLetter`] with the original
/// request goes to `ferry.dead.<queue>.<name>.<namespace>` (header `Ferry-Call-Id`), and its
/// record becomes `dead_lettered` with `deadLetterSequence`. Returns the dead letter's
/// sequence and the dead letter.
pub async fn dead_letter(
    nats: &async_nats::Client,
    call_id: &str,
    statuses: &[u16],
) -> (u64, DeadLetter) {
    let js = jetstream::new(nats.clone());
    let calls = js.get_stream(CALLS_STREAM).await.expect("the calls stream");
    let bucket = js
        .get_key_value(STATUS_BUCKET)
        .await
        .expect("the status bucket");
    let entry = bucket.get(call_id).await.expect("reading a status record");
    let status: CallStatus =
        serde_json::from_slice(&entry.expect("a status record")).expect("a CallStatus");
    let message = messages_of(&calls, call_id)
        .await
        .pop()
        .expect("the queued message");
    let sequence = message.sequence;
    let request: QueueRequest = serde_json::from_slice(&message.payload).expect("a QueueRequest");
    calls
        .delete_message(sequence)
        .await
        .expect("taking the call off the queue");

    let now = ferry_proto::time::now();
    let attempts: Vec<Attempt> = statuses
        .iter()
        .enumerate()
        .map(|(i, code)| Attempt {
            attempt: i as u32 + 1,
            status: Some(*code),
            error: None,
            started_at: now.clone(),
            duration_seconds: 0.01,
        })
        .collect();
    let letter = DeadLetter {
        call_id: call_id.to_string(),
        function: status.function.clone(),
        queue: status.queue.clone(),
        reason: DeadLetterReason::AttemptsExhausted,
        dead_lettered_at: now.clone(),
        submitted_at: status.submitted_at.clone(),
        attempts: attempts.clone(),
        callback: status.callback.clone(),
        result: None,
        request,
        payload: Vec::new(),
        error: None,
    };
    let function = FunctionRef::parse(&status.function, &Name::default_namespace())
        .expect("the record names a function");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, call_id);
    let ack = js
        .publish_with_headers(
            dead_letter_subject(&status.queue, &function),
            headers,
            serde_json::to_vec(&letter)
                .expect("encoding a DeadLetter")
                .into(),
        )
        .await
        .expect("publishing a dead letter")
        .await
        .expect("the dead letter stored");
    rewrite_status(&bucket, call_id, |s| {
        s.state = CallState::DeadLettered;
        s.attempts = attempts.len() as u32;
        s.last_status = statuses.last().copied();
        s.attempt_history = attempts;
        s.finished_at = Some(now.clone());
        s.updated_at = now;
        s.dead_letter_sequence = Some(ack.sequence);
    })
    .await;
    (ack.sequence, letter)
}
