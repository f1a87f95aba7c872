//! The `ferry` CLI against the real stack (NATS, provider-docker, gateway, queue-worker,
//! function containers): `ferry new` → `ferry up` → `ferry invoke` for each built-in template
//! without a registry, and every other command, with exit codes and golden `--json` output
//! (`tests/tests/cli/*.json`; `FERRY_BLESS=1` rewrites them).

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use ferry_tests::auth::AuthedStack;
use ferry_tests::cli::{Ferry, assert_golden};
use ferry_tests::platform::{FAST_RETRIES, MINUTE};
use ferry_tests::worker::TestWorker;
use ferry_tests::{DockerGuard, FunctionImage, ImageSpec, NatsServer, wait_until};
use serde_json::Value;

/// shell, dockerfile and rust: written by `ferry new` (one stack file, `--append`), built
/// and deployed by `ferry up` from the test's watchdog image, called by `ferry invoke`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_go_from_new_to_invoke_without_a_registry() {
    let guard = DockerGuard::new().await;
    // The test's stand-in for `make up`'s ferry/watchdog: the same layout, labelled.
    let watchdog = FunctionImage::build(&guard, "watchdog", &ImageSpec::default()).await;
    let nats = NatsServer::start_async().await;
    let stack = AuthedStack::start(&guard, &nats).await;
    let ferry = Ferry::new(&stack.gateway.url("")).await;
    let password = format!("{}\n", stack.credentials.password());
    ferry
        .ok(&["login", "--password-stdin"], password.as_bytes())
        .await;

    ferry
        .ok(
            &["new", "hello", "--lang", "shell", "--prefix", "ferry-test"],
            b"",
        )
        .await;
    for lang in ["dockerfile", "rust"] {
        let name = format!("hello-{lang}");
        let args = [
            "new",
            &name,
            "--lang",
            lang,
            "--prefix",
            "ferry-test",
            "--append",
            "hello.yml",
        ];
        ferry.ok(&args, b"").await;
    }
    // `new` refuses to overwrite.
    ferry
        .expect(2, &["new", "hello", "--lang", "shell"], b"")
        .await;
    ferry.expect(2, &["new", "x", "--lang", "cobol"], b"").await;
    // Test-only image tags, so parallel runs never share one.
    let file = ferry.path().join("hello.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("image: ferry-test/").count(), 3, "{text}");
    std::fs::write(&file, text.replace(":latest", &format!(":{}", guard.id()))).unwrap();

    let label = format!("com.ferry.test={}", guard.id());
    let out = ferry
        .run(
            &[
                "up",
                "-f",
                "hello.yml",
                "--label",
                &label,
                "--watchdog-image",
                &watchdog.tag,
            ],
            b"",
        )
        .await;
    assert_eq!(out.code, 0, "ferry up: {}", out.stderr);
    assert!(
        out.stderr.contains("[hello] Step"),
        "progress on stderr: {}",
        out.stderr
    );
    assert!(out.stderr.contains("hello-rust is ready"), "{}", out.stderr);

    let answer = ferry.ok(&["invoke", "hello"], b"world").await;
    assert_eq!(answer, "Hello from hello: world\n");
    let answer = ferry.ok(&["invoke", "hello-dockerfile"], b"shout").await;
    assert_eq!(answer, "hello-dockerfile: SHOUT");
    let answer = ferry
        .ok(&["invoke", "hello-rust", "-m", "PUT"], b"ferris")
        .await;
    assert_eq!(
        answer,
        "Hello from hello-rust (Rust), PUT with 6 bytes: ferris\n"
    );

    // A second `up` of one function updates it in place.
    let out = ferry
        .run(
            &[
                "up",
                "-f",
                "hello.yml",
                "--filter",
                "hello",
                "--label",
                &label,
                "-q",
                "--watchdog-image",
                &watchdog.tag,
            ],
            b"",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("updated hello;"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("hello-rust"),
        "--filter: {}",
        out.stderr
    );

    // A missing watchdog image is explained, not pulled.
    let out = ferry
        .run(
            &[
                "build",
                "-f",
                "hello.yml",
                "--watchdog-image",
                "ferry-test/none:missing",
            ],
            b"",
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("make up"), "{}", out.stderr);
    ferry.ok(&["remove", "-f", "hello.yml"], b"").await;
}

/// Login, deploy, list, describe, invoke (sync, async, --wait), calls, dead letters,
/// scale, logs, secrets, remove and version, with their exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_against_the_stack() {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let stack = AuthedStack::start(&guard, &nats).await;
    let env = stack.env();
    let mut worker_env: Vec<(&str, &str)> = FAST_RETRIES.to_vec();
    worker_env.extend_from_slice(&env);
    let _worker = TestWorker::start(&nats.url(), &stack.provider.url(""), &worker_env).await;
    let ferry = Ferry::new(&stack.gateway.url("")).await;
    let replace = [(image.tag.as_str(), "<image>")];

    // Not logged in: 4; a wrong password is refused and not stored; then the right one.
    ferry.expect(4, &["list"], b"").await;
    ferry
        .expect(4, &["login", "--password-stdin"], b"wrong\n")
        .await;
    ferry.expect(4, &["list"], b"").await;
    let password = format!("{}\n", stack.credentials.password());
    ferry
        .ok(
            &["login", "-u", stack.credentials.user(), "--password-stdin"],
            password.as_bytes(),
        )
        .await;
    ferry
        .expect(4, &["list", "--token", "not-a-token"], b"")
        .await;
    ferry
        .expect(5, &["list", "--gateway", "127.0.0.1:1"], b"")
        .await;

    deploy_and_read(&ferry, &image.tag, &replace).await;
    invoke_and_follow_calls(&ferry, &replace).await;
    secrets(&ferry).await;

    // Scale, logs.
    ferry.ok(&["scale", "echo", "--replicas", "2"], b"").await;
    wait_until("echo has 2 ready replicas", MINUTE, || async {
        let out = ferry.run(&["describe", "echo", "--json"], b"").await;
        serde_json::from_str::<Value>(&out.stdout).is_ok_and(|v| v["availableReplicas"] == 2)
    })
    .await;
    let logs = ferry
        .ok(&["logs", "echo", "--since", "1h", "--tail", "50"], b"")
        .await;
    assert!(logs.contains("echo-server"), "{logs}");

    let version = ferry.ok(&["version", "--json"], b"").await;
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["client"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        version["gateway"]["info"]["provider"]["orchestration"],
        "docker"
    );
    let completion = ferry.ok(&["completion", "bash"], b"").await;
    assert!(completion.contains("dead-letters"));

    calls_list(&ferry).await;
    ferry.ok(&["remove", "echo"], b"").await;
    ferry.expect(3, &["remove", "echo"], b"").await;
    ferry.expect(3, &["describe", "echo"], b"").await;
}

/// deploy (create, then update), list, describe.
async fn deploy_and_read(ferry: &Ferry, image: &str, replace: &[(&str, &str)]) {
    let deploy = [
        "deploy",
        "--image",
        image,
        "--name",
        "echo",
        "--label",
        "com.openfaas.scale.max=3",
        "--annotation",
        "com.openfaas.retry.attempts=2",
        "--env",
        "GREETING=hi",
    ];
    let out = ferry.expect(0, &deploy, b"").await;
    assert!(out.stderr.contains("created echo"), "{}", out.stderr);
    let out = ferry.expect(0, &deploy, b"").await;
    assert!(out.stderr.contains("updated echo"), "{}", out.stderr);
    assert_golden("list", &ferry.ok(&["list", "--json"], b"").await, replace);
    assert_golden(
        "describe",
        &ferry.ok(&["describe", "echo", "--json"], b"").await,
        replace,
    );
    let table = ferry.ok(&["list", "-v"], b"").await;
    assert!(table.starts_with("FUNCTION"), "{table}");
    assert!(table.contains("echo") && table.contains(image), "{table}");
    let text = ferry.ok(&["describe", "echo.openfaas-fn"], b"").await;
    assert!(text.contains("GREETING=hi"), "{text}");
    ferry.expect(3, &["describe", "nope"], b"").await;
    ferry.expect(2, &["deploy", "-f", "missing.yml"], b"").await;
}

/// invoke sync and async, calls get/list/cancel, dead letters.
async fn invoke_and_follow_calls(ferry: &Ferry, replace: &[(&str, &str)]) {
    let answer = ferry
        .ok(
            &["invoke", "echo", "--query", "a=1", "-H", "X-Thing=yes"],
            b"ping",
        )
        .await;
    let echo: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(echo["body"], "ping");
    assert_eq!(echo["query"], "a=1", "{echo}");
    let out = ferry
        .expect(6, &["invoke", "echo", "-H", "X-Echo-Status=500"], b"")
        .await;
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    ferry.expect(3, &["invoke", "nope"], b"").await;

    let out = ferry
        .expect(
            0,
            &["invoke", "echo", "--async", "--wait", "--json"],
            b"queued",
        )
        .await;
    let done: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = done["callId"].as_str().unwrap().to_owned();
    assert_golden("call-succeeded", &out.stdout, replace);
    assert_golden(
        "calls-get",
        &ferry.ok(&["calls", "get", &id, "--json"], b"").await,
        replace,
    );
    ferry.expect(7, &["calls", "cancel", &id], b"").await;
    ferry
        .expect(3, &["calls", "get", "no-such-call"], b"")
        .await;
    // Two failed attempts (the annotation): dead-lettered, exit 6; then the dead letter.
    let out = ferry
        .expect(
            6,
            &[
                "invoke",
                "echo",
                "--async",
                "--wait",
                "-H",
                "X-Echo-Fail-Times=9",
            ],
            b"",
        )
        .await;
    assert!(out.stdout.contains("dead_lettered"), "{}", out.stdout);
    let listed = ferry
        .ok(
            &["dead-letters", "list", "--function", "echo", "--json"],
            b"",
        )
        .await;
    assert_golden("dead-letters-list", &listed, replace);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let dead = listed["items"][0]["callId"].as_str().unwrap().to_owned();
    let letter: Value =
        serde_json::from_str(&ferry.ok(&["dead-letters", "show", &dead], b"").await).unwrap();
    assert_eq!(letter["reason"], "attempts_exhausted");
    let redriven = ferry
        .ok(&["dead-letters", "redrive", &dead, "--json"], b"")
        .await;
    let redriven: Value = serde_json::from_str(&redriven).unwrap();
    assert_eq!(redriven["redrives"], 1, "{redriven}");
    ferry
        .expect(3, &["dead-letters", "show", "no-such-call"], b"")
        .await;
}

/// secret create, list, update, remove.
async fn secrets(ferry: &Ferry) {
    ferry
        .ok(
            &["secret", "create", "api-key", "--from-literal", "s3cr3t"],
            b"",
        )
        .await;
    ferry
        .expect(7, &["secret", "create", "api-key"], b"again")
        .await;
    ferry.ok(&["secret", "create", "db"], b"from stdin").await;
    assert_golden(
        "secrets",
        &ferry.ok(&["secret", "list", "--json"], b"").await,
        &[],
    );
    ferry.ok(&["secret", "update", "api-key"], b"n3w").await;
    ferry.ok(&["secret", "remove", "api-key"], b"").await;
    ferry.expect(3, &["secret", "remove", "api-key"], b"").await;
    let table = ferry.ok(&["secret", "list"], b"").await;
    assert_eq!(table, "NAME  NAMESPACE\ndb    openfaas-fn\n");
}

/// calls list: `GET /system/async-calls?function=`, newest first (the succeeded call and the
/// redriven one).
async fn calls_list(ferry: &Ferry) {
    let list = ferry
        .ok(
            &[
                "calls",
                "list",
                "--function",
                "echo",
                "--limit",
                "5",
                "--json",
            ],
            b"",
        )
        .await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let states: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    assert_eq!(states.len(), 2, "{list}");
    assert!(states.contains(&"succeeded"), "{list}");
    let one = ferry
        .ok(
            &["calls", "list", "--function", "echo", "--limit", "1"],
            b"",
        )
        .await;
    assert_eq!(one.lines().count(), 2, "a header and one call: {one}");
}
