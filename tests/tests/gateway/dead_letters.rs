//! The dead-letter API: listing (paged, filtered), inspecting, redriving one or a function's,
//! and deleting.

use async_nats::jetstream;
use ferry_proto::QueueRequest;
use ferry_proto::calls::{CallState, CallStatus, DeadLetter, DeadLetterPage};
use ferry_proto::jetstream::{CALL_ID_HEADER, DEAD_LETTER_STREAM};
use ferry_tests::gateway::{calls_and_statuses, dead_letter, messages_of};
use ferry_tests::http_client;
use serde_json::{Value, json};

use crate::common::{ECHO_SUBJECT, EchoStack, gateway_error, header};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_inspected_redriven_and_deleted() {
    let stack = EchoStack::start().await;
    let EchoStack { gateway, nats, .. } = &stack;
    let client = http_client();
    let (stream, statuses) = calls_and_statuses(nats).await;
    let nc = nats.connect().await;
    let dead_stream = jetstream::new(nc.clone())
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .unwrap();
    let get = |path: String| {
        let req = client.get(gateway.url(&path));
        async move { req.send().await.unwrap() }
    };
    let page = |query: &'static str| {
        let req = client.get(gateway.url(&format!("/system/dead-letters{query}")));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{query}");
            resp.json::<DeadLetterPage>().await.unwrap()
        }
    };

    // An empty stream answers at once.
    let empty = page("").await;
    assert!(empty.items.is_empty() && empty.next.is_none());

    // Three calls that failed for good, dead-lettered as the worker does.
    let mut ids = Vec::new();
    let mut letters = Vec::new();
    for i in 0..3 {
        let resp = client
            .post(gateway.url(&format!("/async-function/echo/job/{i}")))
            .header("x-callback-url", "http://127.0.0.1:9/cb")
            .body(format!("job {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let id = header(&resp, "x-call-id");
        letters.push(dead_letter(&nc, &id, &[500, 502]).await);
        ids.push(id);
    }

    // Listing: oldest first, summaries, paged with limit and next.
    let all = page("").await;
    assert_eq!(all.next, None);
    let listed: Vec<(u64, &str)> = all
        .items
        .iter()
        .map(|i| (i.sequence, i.call_id.as_str()))
        .collect();
    let expected: Vec<(u64, &str)> = letters
        .iter()
        .map(|(seq, l)| (*seq, l.call_id.as_str()))
        .collect();
    assert_eq!(listed, expected);
    let first = &all.items[0];
    assert_eq!(
        (first.function.as_str(), first.queue.as_str()),
        ("echo.openfaas-fn", "faas-request")
    );
    assert_eq!((first.attempts, first.last_status), (2, Some(502)));
    let mut seen = Vec::new();
    let mut next = Some(0);
    while let Some(after) = next {
        let p: DeadLetterPage = get(format!(
            "/system/dead-letters?function=echo&limit=1&after={after}"
        ))
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(p.items.len(), 1, "after {after}");
        seen.push(p.items[0].call_id.clone());
        next = p.next;
        assert_eq!(
            next.is_some(),
            seen.len() < 3,
            "next after {after}: {next:?}"
        );
    }
    assert_eq!(seen, ids);
    for other in [
        "?function=other",
        "?function=echo&namespace=dev",
        "?namespace=dev",
    ] {
        assert!(page(other).await.items.is_empty(), "{other}");
    }
    for bad in ["?limit=0", "?limit=ten", "?after=-1", "?function=Bad_Name"] {
        gateway_error(get(format!("/system/dead-letters{bad}")).await, 400).await;
    }

    // Inspecting one: the whole dead letter, by its record's sequence or by scanning.
    let resp = get(format!("/system/dead-letters/{}", ids[0])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<DeadLetter>().await.unwrap(), letters[0].1);
    statuses.delete(&ids[1]).await.unwrap(); // the record expired: found by scanning
    let resp = get(format!("/system/dead-letters/{}", ids[1])).await;
    assert_eq!(resp.json::<DeadLetter>().await.unwrap(), letters[1].1);
    gateway_error(get("/system/dead-letters/no-such-call".into()).await, 404).await;
    gateway_error(get("/system/dead-letters/a..b".into()).await, 400).await;

    // Redriving one: the original request is queued again under the same id, the dead letter
    // is gone, the status is `queued` with `redrives: 1` and a fresh run.
    let redrive = |id: &str| {
        let req = client.post(gateway.url(&format!("/system/dead-letters/{id}/redrive")));
        async move { req.send().await.unwrap() }
    };
    let resp = redrive(&ids[0]).await;
    assert_eq!(resp.status(), 202);
    let status: CallStatus = resp.json().await.unwrap();
    assert_eq!(
        (status.state, status.redrives, status.attempts),
        (CallState::Queued, 1, 0)
    );
    assert!(status.attempt_history.is_empty() && status.dead_letter_sequence.is_none());
    let queued = messages_of(&stream, &ids[0]).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(status.sequence, None, "no worker has run it since");
    assert!(queued[0].headers.get("Ferry-Status-Revision").is_none());
    assert_eq!(queued[0].subject.as_str(), ECHO_SUBJECT);
    let msg_id = queued[0].headers.get("Nats-Msg-Id").unwrap().as_str();
    assert_eq!(msg_id, format!("{}.redrive1", ids[0]));
    let request: QueueRequest = serde_json::from_slice(&queued[0].payload).unwrap();
    assert_eq!(request, letters[0].1.request);
    assert!(dead_stream.get_raw_message(letters[0].0).await.is_err());
    gateway_error(get(format!("/system/dead-letters/{}", ids[0])).await, 404).await;
    assert_eq!(gateway.call_status(&ids[0]).await, Some(status));
    gateway_error(redrive(&ids[0]).await, 404).await;

    // A dead letter of a call that is queued again is not redriven twice (409), but can be
    // deleted.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, ids[0].as_str());
    let stale = jetstream::new(nc.clone())
        .publish_with_headers(
            "ferry.dead.faas-request.echo.openfaas-fn",
            headers,
            serde_json::to_vec(&letters[0].1).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let message = gateway_error(redrive(&ids[0]).await, 409).await;
    assert!(message.contains("queued"), "{message}");
    let delete = |id: &str| {
        let req = client.delete(gateway.url(&format!("/system/dead-letters/{id}")));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(delete(&ids[0]).await.status(), 204);
    assert!(dead_stream.get_raw_message(stale.sequence).await.is_err());

    // Deleting one: 204, then 404; the call keeps its final state.
    assert_eq!(delete(&ids[2]).await.status(), 204);
    gateway_error(delete(&ids[2]).await, 404).await;
    gateway_error(get(format!("/system/dead-letters/{}", ids[2])).await, 404).await;
    let status = gateway.call_status(&ids[2]).await.unwrap();
    assert_eq!(
        (status.state, status.dead_letter_sequence),
        (CallState::DeadLettered, None)
    );

    // Redriving a function's dead letters: the function is required.
    let resp = client
        .post(gateway.url("/system/dead-letters/redrive"))
        .send()
        .await
        .unwrap();
    assert!(gateway_error(resp, 400).await.contains("function"));
    let resp = client
        .post(gateway.url("/system/dead-letters/redrive?function=echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"redriven": 1}));
    let status = gateway
        .call_status(&ids[1])
        .await
        .expect("recreated from the dead letter");
    assert_eq!((status.state, status.redrives), (CallState::Queued, 1));
    assert_eq!(status.submitted_at, letters[1].1.submitted_at);
    let queued = messages_of(&stream, &ids[1]).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        serde_json::from_slice::<QueueRequest>(&queued[0].payload).unwrap(),
        letters[1].1.request
    );
    let left = page("").await;
    assert!(left.items.is_empty() && left.next.is_none(), "{left:?}");
}
