//! Call status: `Location` and `GET /system/async-calls/<id>`, cancelling, idempotent
//! submission (`Idempotency-Key`, repeated `X-Call-Id`), caller call-id validation, NATS down;
//! a function's recent calls (`GET /system/async-calls?function=`).

use ferry_proto::QueueRequest;
use ferry_proto::calls::{CallState, CallStatus, CallbackState};
use ferry_tests::gateway::{calls_and_statuses, messages_of, rewrite_status};
use ferry_tests::http_client;
use serde_json::json;

use crate::common::{ECHO_SUBJECT, EchoStack, gateway_error, header, uuid_like};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_have_a_status_can_be_cancelled_and_are_idempotent() {
    let mut stack = EchoStack::start().await;
    let (gateway, nats) = (&stack.gateway, &mut stack.nats);
    let client = http_client();
    let (stream, statuses) = calls_and_statuses(nats).await;
    let submit = |headers: &[(&str, &str)]| {
        let mut req = client
            .post(gateway.url("/async-function/echo"))
            .body("work");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap() }
    };
    let call_url = |id: &str| gateway.url(&format!("/system/async-calls/{id}"));

    // The 202 points at the status: `queued`, stored before the message (whose header carries
    // the record's revision).
    let resp = submit(&[("x-callback-url", "http://127.0.0.1:9/cb")]).await;
    assert_eq!(resp.status(), 202);
    let id = header(&resp, "x-call-id");
    assert_eq!(
        header(&resp, "location"),
        format!("/system/async-calls/{id}")
    );
    let message = stream
        .get_last_raw_message_by_subject(ECHO_SUBJECT)
        .await
        .unwrap();
    let resp = client
        .get(gateway.url(&format!("/system/async-calls/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status: CallStatus = resp.json().await.unwrap();
    assert_eq!(status.state, CallState::Queued);
    assert_eq!(
        (
            status.call_id.as_str(),
            status.function.as_str(),
            status.queue.as_str()
        ),
        (id.as_str(), "echo.openfaas-fn", "faas-request")
    );
    assert_eq!(status.sequence, None, "no worker has run it");
    // The queue's depth: one call stored, no worker's consumer yet.
    let queues: serde_json::Value = client
        .get(gateway.url("/system/queues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        queues,
        json!([{"queue": "faas-request", "stored": 1, "scheduledRetries": 0, "pending": null,
            "inFlight": null, "waitingWorkers": null, "functions": {"echo.openfaas-fn": 1}}])
    );
    let revision = message
        .headers
        .get("Ferry-Status-Revision")
        .map(|v| v.to_string());
    assert!(revision.is_some_and(|r| r.parse::<u64>().is_ok()));
    assert_eq!((status.attempts, status.redrives), (0, 0));
    let callback = status.callback.clone().expect("the callback is recorded");
    assert_eq!(callback.url, "http://127.0.0.1:9/cb");
    assert_eq!(
        (callback.state, callback.attempts),
        (CallbackState::Pending, 0)
    );
    assert!(
        status.submitted_at.ends_with('Z'),
        "{}",
        status.submitted_at
    );
    assert_eq!(gateway.call_status(&id).await, Some(status));

    // Unknown ids are 404, ids that cannot be call ids 400: the gateway's own answers.
    let resp = client.get(call_url("no-such-call")).send().await.unwrap();
    assert!(gateway_error(resp, 404).await.contains("no-such-call"));
    let resp = client
        .delete(call_url("no-such-call"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 404).await;
    for bad in ["a..b", "bad*id", ".x", "%C3%A9"] {
        let resp = client.get(call_url(bad)).send().await.unwrap();
        assert!(gateway_error(resp, 400).await.contains("call id"), "{bad}");
    }
    let resp = client.post(call_url(&id)).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // Cancelling a queued call: `cancelled`; its message stays until a worker acknowledges it
    // unrun.
    let resp = client.delete(call_url(&id)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let cancelled: CallStatus = resp.json().await.unwrap();
    assert_eq!(cancelled.state, CallState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(stream.get_raw_message(message.sequence).await.is_ok());
    assert_eq!(
        gateway.call_status(&id).await.unwrap().state,
        CallState::Cancelled
    );
    let resp = client.delete(call_url(&id)).send().await.unwrap();
    assert!(gateway_error(resp, 409).await.contains("already cancelled"));

    // A running call cannot be cancelled, nor a finished one; their messages stay.
    let resp = submit(&[]).await;
    let busy = header(&resp, "x-call-id");
    let sequence = messages_of(&stream, &busy).await[0].sequence;
    rewrite_status(&statuses, &busy, |s| s.state = CallState::Running).await;
    let resp = client.delete(call_url(&busy)).send().await.unwrap();
    let message = gateway_error(resp, 409).await;
    assert!(
        message.contains("is running and cannot be cancelled"),
        "{message}"
    );
    rewrite_status(&statuses, &busy, |s| s.state = CallState::Succeeded).await;
    let resp = client.delete(call_url(&busy)).send().await.unwrap();
    assert!(gateway_error(resp, 409).await.contains("succeeded"));
    assert!(stream.get_raw_message(sequence).await.is_ok());

    // The same Idempotency-Key twice: one stored call, one id (a UUID v5 of function and key).
    let first = header(
        &submit(&[("idempotency-key", "order-7")]).await,
        "x-call-id",
    );
    let resp = submit(&[("idempotency-key", "order-7")]).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "x-call-id"), first);
    assert_eq!(
        header(&resp, "location"),
        format!("/system/async-calls/{first}")
    );
    assert!(uuid_like(&first) && first.as_bytes()[14] == b'5', "{first}");
    let stored = messages_of(&stream, &first).await;
    assert_eq!(stored.len(), 1);
    assert!(gateway.call_status(&first).await.is_some());
    // A repeat does not overwrite the record, and the key wins over X-Call-Id.
    rewrite_status(&statuses, &first, |s| s.state = CallState::Running).await;
    let resp = submit(&[("idempotency-key", "order-7"), ("x-call-id", "mine")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "x-call-id")),
        (202, first.clone())
    );
    assert_eq!(messages_of(&stream, &first).await.len(), 1);
    assert_eq!(
        gateway.call_status(&first).await.unwrap().state,
        CallState::Running
    );
    let other = header(
        &submit(&[("idempotency-key", "order-8")]).await,
        "x-call-id",
    );
    assert_ne!(other, first);
    let q: QueueRequest =
        serde_json::from_slice(&messages_of(&stream, &other).await[0].payload).unwrap();
    assert_eq!(q.header_value("x-call-id"), Some(other.as_str()));

    // A repeated X-Call-Id inside the duplicate window is stored once; its record is kept.
    assert_eq!(submit(&[("x-call-id", "dup-1")]).await.status(), 202);
    rewrite_status(&statuses, "dup-1", |s| s.state = CallState::Running).await;
    let resp = submit(&[("x-call-id", "dup-1")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "x-call-id")),
        (202, "dup-1".into())
    );
    assert_eq!(messages_of(&stream, "dup-1").await.len(), 1);
    assert_eq!(
        gateway.call_status("dup-1").await.unwrap().state,
        CallState::Running
    );

    // The same X-Call-Id after the duplicate window is a different call under an id in use:
    // refused, nothing stored.
    rewrite_status(&statuses, "dup-1", |s| {
        s.submitted_at = "2020-01-01T00:00:00.000Z".into();
    })
    .await;
    let resp = submit(&[("x-call-id", "dup-1")]).await;
    assert!(gateway_error(resp, 409).await.contains("already in use"));
    assert_eq!(messages_of(&stream, "dup-1").await.len(), 1);

    // Ids and keys that cannot be used are refused before anything is stored.
    let count = stream.get_info().await.unwrap().state.messages;
    let long_id = "x".repeat(129);
    for bad in ["a/b", "a b", "a..b", long_id.as_str()] {
        let resp = submit(&[("x-call-id", bad)]).await;
        assert!(gateway_error(resp, 400).await.contains("call id"), "{bad}");
    }
    let long_key = "k".repeat(257);
    let resp = submit(&[("idempotency-key", &long_key)]).await;
    assert!(gateway_error(resp, 400).await.contains("Idempotency-Key"));
    assert_eq!(stream.get_info().await.unwrap().state.messages, count);

    // NATS down: the status API says 503.
    tokio::task::block_in_place(|| nats.stop());
    let resp = client.get(call_url(&first)).send().await.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    gateway_error(resp, 503).await;
    let resp = client.delete(call_url(&first)).send().await.unwrap();
    gateway_error(resp, 503).await;
    let resp = client
        .get(gateway.url("/system/dead-letters"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functions_recent_calls_are_listed_newest_first() {
    let stack = EchoStack::start().await;
    let (gateway, nats) = (&stack.gateway, &stack.nats);
    let client = http_client();
    let (_, statuses) = calls_and_statuses(nats).await;
    let list = |query: &str| {
        let req = client.get(gateway.url(&format!("/system/async-calls?{query}")));
        async move { req.send().await.unwrap() }
    };
    let ids_of = |calls: &[CallStatus]| calls.iter().map(|c| c.call_id.clone()).collect::<Vec<_>>();

    let mut submitted = Vec::new();
    for n in 0..4 {
        let resp = client
            .post(gateway.url("/async-function/echo"))
            .body(format!("call {n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        submitted.push(header(&resp, "x-call-id"));
    }
    // An idempotent repeat is not listed twice.
    let repeat = client
        .post(gateway.url("/async-function/echo"))
        .header("x-call-id", &submitted[3])
        .body("call 3")
        .send()
        .await
        .unwrap();
    assert_eq!(repeat.status(), 202);
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();

    let resp = list("function=echo").await;
    assert_eq!(resp.status(), 200);
    let calls: Vec<CallStatus> = resp.json().await.unwrap();
    assert_eq!(ids_of(&calls), newest_first);
    assert!(
        calls
            .iter()
            .all(|c| c.state == CallState::Queued && c.function == "echo.openfaas-fn")
    );
    let calls: Vec<CallStatus> = list("function=echo.openfaas-fn&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids_of(&calls), newest_first[..2]);

    // The records are the truth: a cancelled call is listed as cancelled, an expired record
    // (removed here) is left out.
    let cancel = client
        .delete(gateway.url(&format!("/system/async-calls/{}", submitted[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    statuses.purge(&submitted[0]).await.unwrap();
    let calls: Vec<CallStatus> = list("function=echo&state=cancelled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids_of(&calls), [submitted[1].clone()]);
    let calls: Vec<CallStatus> = list("function=echo&namespace=openfaas-fn&state=queued")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids_of(&calls), [submitted[3].clone(), submitted[2].clone()]);
    let calls: Vec<CallStatus> = list("function=never-called").await.json().await.unwrap();
    assert!(calls.is_empty());

    for bad in [
        "",
        "namespace=openfaas-fn",
        "function=Not_A_Name",
        "function=echo&limit=0",
        "function=echo&limit=101",
        "function=echo&state=finished",
    ] {
        assert!(
            !gateway_error(list(bad).await, 400).await.is_empty(),
            "{bad}"
        );
    }
}
