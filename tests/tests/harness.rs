//! Tests of the harness itself: a real nats-server with JetStream that keeps its data across a
//! restart, and function images that build, run and are cleaned up without a trace.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use ferry_tests::images::DEFAULT_HANDLER;
use ferry_tests::{
    ContainerSpec, DockerGuard, FunctionImage, ImageSpec, NatsServer, TEST_LABEL, http_client,
    leftovers, wait_until,
};
use futures_util::StreamExt;

#[tokio::test]
async fn nats_server_keeps_jetstream_data_across_restart() {
    let mut server = NatsServer::start_async().await;
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert!(server.store_dir().is_dir());

    let first = server.connect().await;
    let js = jetstream::new(first.clone());
    let stream = js
        .create_stream(stream::Config {
            name: "HARNESS".to_owned(),
            subjects: vec!["harness.>".to_owned()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create stream");
    let ack = js
        .publish("harness.greeting", "hello".into())
        .await
        .expect("publish")
        .await
        .expect("publish ack");
    assert_eq!((ack.stream.as_str(), ack.sequence), ("HARNESS", 1));

    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("reader".to_owned()),
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let message = batch.next().await.expect("one message").expect("message");
    assert_eq!(message.subject.as_str(), "harness.greeting");
    assert_eq!(&message.payload[..], b"hello");
    message.double_ack().await.expect("ack");

    // A clean stop flushes everything: the stream, its message and the consumer's position.
    server.stop();
    assert!(!server.is_running());
    server.start_again();
    let js = jetstream::new(server.connect().await);
    let mut stream = js.get_stream("HARNESS").await.expect("stream after stop");
    assert_eq!(stream.info().await.expect("stream info").state.messages, 1);
    let stored = stream.get_raw_message(1).await.expect("message 1");
    assert_eq!(&stored.payload[..], b"hello");
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer("reader").await.expect("consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.ack_floor.stream_sequence, 1);

    // A crash (SIGKILL) keeps every acknowledged publish.
    let ack = js
        .publish("harness.second", "again".into())
        .await
        .expect("publish")
        .await
        .expect("publish ack");
    assert_eq!(ack.sequence, 2);
    server.restart();
    assert!(server.is_running());
    let js = jetstream::new(server.connect().await);
    let mut stream = js
        .get_stream("HARNESS")
        .await
        .expect("stream after restart");
    assert_eq!(stream.info().await.expect("stream info").state.messages, 2);
    let stored = stream.get_raw_message(2).await.expect("message 2");
    assert_eq!(&stored.payload[..], b"again");

    // A client connected before the restart finds the server again on the same port.
    wait_until(
        "the first client reconnects",
        Duration::from_secs(15),
        || {
            let state = first.connection_state();
            async move { state == async_nats::connection::State::Connected }
        },
    )
    .await;
}

#[tokio::test]
async fn function_images_run_and_leave_nothing_behind() {
    let guard = DockerGuard::new().await;
    let id = guard.id().to_owned();
    let docker = guard.docker().clone();

    let started = std::time::Instant::now();
    let cat = FunctionImage::cat_streaming(&guard).await;
    let echo = FunctionImage::echo_http(&guard).await;
    let tricky = r#"a $HOME "q" \ b"#;
    let spec = ImageSpec::shell_serializing(DEFAULT_HANDLER).env("tricky", tricky);
    let shell = FunctionImage::build(&guard, "shell", &spec).await;
    eprintln!("built three function images in {:?}", started.elapsed());

    let config = docker
        .inspect_image(&shell.tag)
        .await
        .expect("inspect")
        .config
        .unwrap();
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&format!("tricky={tricky}")), "{env:?}");
    assert!(env.contains(&"mode=serializing".to_owned()), "{env:?}");
    assert_eq!(config.cmd, Some(vec!["/usr/bin/fwatchdog".to_owned()]));
    assert_eq!(config.labels.unwrap_or_default().get(TEST_LABEL), Some(&id));

    let network = guard.create_network("functions").await;
    let cat_box = guard
        .run(ContainerSpec::new(&cat.tag, "cat").network(&network))
        .await;
    let echo_box = guard
        .run(ContainerSpec::new(&echo.tag, "echo").network(&network))
        .await;
    let shell_box = guard
        .run(ContainerSpec::new(&shell.tag, "shell").network(&network))
        .await;
    for container in [&cat_box, &echo_box, &shell_box] {
        guard.wait_ready(container, Duration::from_secs(20)).await;
    }

    let client = http_client();
    let response = client
        .post(cat_box.url())
        .body("streamed through cat")
        .send()
        .await
        .expect("POST to cat");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "streamed through cat");

    let response = client
        .post(format!("{}/some/path?x=1", echo_box.url()))
        .body("echo me")
        .send()
        .await
        .expect("POST to echo-server");
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = response.json().await.expect("echo-server answers JSON");
    assert_eq!(echoed["method"], "POST", "{echoed}");
    assert_eq!(echoed["path"], "/some/path", "{echoed}");
    assert_eq!(echoed["query"], "x=1", "{echoed}");
    assert_eq!(echoed["body"], "echo me", "{echoed}");

    let response = client
        .put(format!("{}/a/b?c=d", shell_box.url()))
        .body("from the shell")
        .send()
        .await
        .expect("PUT to the shell handler");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "PUT /a/b c=d\nfrom the shell"
    );

    drop(guard);
    let left = leftovers(&docker, &id).await;
    assert!(left.is_empty(), "left behind: {left:#?}");
    for tag in [&cat.tag, &echo.tag, &shell.tag] {
        assert!(
            docker.inspect_image(tag).await.is_err(),
            "{tag} still exists"
        );
    }
}

#[tokio::test]
async fn docker_guard_cleans_up_when_the_test_panics() {
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let guard = DockerGuard::new().await;
        let _ = id_tx.send(guard.id().to_owned());
        guard.create_network("doomed").await;
        panic!("deliberate panic while holding a DockerGuard");
    });
    assert!(task.await.expect_err("the task panics").is_panic());
    let id = id_rx.await.expect("the guard's id");
    let left = leftovers(&ferry_tests::docker().await, &id).await;
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn docker_guard_cleans_up_outside_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (guard, network) = runtime.block_on(async {
        let guard = DockerGuard::new().await;
        let network = guard.create_network("outside").await;
        (guard, network)
    });
    let id = guard.id().to_owned();
    drop(runtime);
    drop(guard);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let docker = runtime.block_on(ferry_tests::docker());
    let left = runtime.block_on(leftovers(&docker, &id));
    assert!(left.is_empty(), "{network} left behind: {left:#?}");
}

#[tokio::test]
async fn sweep_removes_what_dead_test_processes_left() {
    // A pid that surely belongs to no live process: a child that has exited and been reaped.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait for true");

    let docker = ferry_tests::docker().await;
    let stale_id = format!("ferry-test-{dead}-0-deadbeef");
    let live_id = ferry_tests::new_test_id();
    let mut networks = Vec::new();
    for (label, id) in [
        (ferry_tests::TEST_LABEL, &stale_id),
        (ferry_tests::INSTANCE_LABEL, &stale_id),
        (ferry_tests::TEST_LABEL, &live_id),
    ] {
        let name = format!("{id}-{}", networks.len());
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            labels: Some([(label.to_owned(), id.clone())].into()),
            ..Default::default()
        };
        docker
            .create_network(request)
            .await
            .expect("create network");
        networks.push(name);
    }

    ferry_tests::sweep_stale(&docker).await;

    let stale_left = leftovers(&docker, &stale_id).await;
    let live_left = leftovers(&docker, &live_id).await;
    // Clean up before asserting, so a failure leaves nothing behind either.
    for name in &networks {
        let _ = docker.remove_network(name).await;
    }
    assert!(
        stale_left.is_empty(),
        "stale objects survived: {stale_left:#?}"
    );
    assert_eq!(
        live_left.len(),
        1,
        "the live test's network must stay: {live_left:#?}"
    );
}
