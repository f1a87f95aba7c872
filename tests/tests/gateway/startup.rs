//! Starting without NATS: health, sync calls and the provider API meanwhile, the calls stream
//! created once NATS comes; the provider gone (502).

use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

use crate::common::{MINUTE, calls_stream, gateway_error, health};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_starts_without_nats_and_creates_the_stream_when_it_comes() {
    let guard = DockerGuard::new().await;
    let provider = TestProvider::start(&guard).await;
    let mut nats = NatsServer::start_async().await;
    tokio::task::block_in_place(|| nats.stop());
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();

    let (status, body) = health(&gateway).await;
    assert_eq!(status, 503);
    assert_eq!(
        (&body["status"], &body["nats"], &body["provider"]),
        (&json!("unavailable"), &json!("disconnected"), &json!("ok")),
        "{body}"
    );
    // Sync calls and the provider API do not need NATS.
    let resp = client
        .get(gateway.url("/function/nope"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 404).await;
    let resp = client
        .get(gateway.url("/system/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    tokio::task::block_in_place(|| nats.start_again());
    wait_until("healthz is ok once NATS is up", MINUTE, || async {
        health(&gateway).await.0 == 200
    })
    .await;
    let stream = calls_stream(&nats).await;
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.subjects, ["ferry.calls.>", "ferry.retry.>"]);
    assert!(info.config.allow_message_schedules);

    // With the provider gone, /system/* is a 502 of the gateway's own.
    let provider_url = provider.url("");
    provider.stop().await;
    let resp = client
        .get(gateway.url("/system/functions"))
        .send()
        .await
        .unwrap();
    let message = gateway_error(resp, 502).await;
    assert!(message.contains(&provider_url), "{message}");
}
