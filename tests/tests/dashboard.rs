//! The web dashboard (`/ui/`) in headless Chromium against the real stack: NATS, the Docker
//! provider with the echo function image, the gateway with basic auth, a queue-worker.
//!
//! Through the pages only, as a user would: log in with the generated credentials, deploy a
//! function and see it become ready, invoke it sync and async and see the async call
//! complete and listed among the function's recent calls, its history charted from a real
//! Prometheus, its memory per replica on the list; deploy one that always fails and see its
//! call dead-lettered, redrive it from the dead-letter page; walk the list and the function's
//! page with the keyboard only (skip link, Tab, Enter) and find every control labelled; scale
//! to zero, delete the function; the functions list at 360 px wide. Every page is saved under
//! `target/dashboard/` as a screenshot.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

#[path = "dashboard/browser.rs"]
mod browser;

use browser::Browser;
use fantoccini::key::Key;
use ferry_tests::auth::AuthedStack;
use ferry_tests::gateway::TestGateway;
use ferry_tests::platform::{FAST_RETRIES, MINUTE};
use ferry_tests::prometheus::PrometheusServer;
use ferry_tests::worker::TestWorker;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, free_port, http_client, wait_until};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deploys_invokes_watches_redrives_and_deletes_in_the_browser() {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let prometheus_port = free_port().to_string();
    let prometheus_env = [
        ("faas_prometheus_host", "127.0.0.1"),
        ("faas_prometheus_port", prometheus_port.as_str()),
    ];
    let stack = AuthedStack::start_with(&guard, &nats, &prometheus_env).await;
    let (gateway, credentials) = (&stack.gateway, &stack.credentials);
    let _prometheus = PrometheusServer::start(
        prometheus_port.parse().unwrap(),
        &[gateway.addr().to_string()],
    )
    .await;
    let env = stack.env();
    let mut worker_env: Vec<(&str, &str)> = FAST_RETRIES.to_vec();
    worker_env.extend_from_slice(&env);
    worker_env.push(("max_retry_attempts", "2"));
    let _worker = TestWorker::start(&nats.url(), &stack.provider.url(""), &worker_env).await;

    // `/` leads to the dashboard; its files need no credentials, the API does.
    let root = http_client().get(gateway.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200, "redirected to /ui/");
    assert!(root.url().path().ends_with("/ui/"), "{}", root.url());

    let b = Browser::start(1280, 900).await;
    b.goto(&gateway.url("/ui/")).await;
    b.fill("#login-user", credentials.user()).await;
    b.fill("#login-password", "wrong").await;
    b.click_button("Log in").await;
    b.wait_text("#status", "Wrong user, password or token")
        .await;
    b.shot("01-login").await;
    b.fill("#login-user", credentials.user()).await;
    b.fill("#login-password", credentials.password()).await;
    b.click_button("Log in").await;
    b.wait_text("h1", "Functions").await;
    deploy(&b, "hello", &image.tag, "").await;
    b.wait_text("main", "1 ready / 1 desired").await;
    b.shot("03-function").await;

    // Sync: status, headers and body of the echo.
    b.fill("#invoke-body", "hi from the browser").await;
    b.click_button("Invoke").await;
    b.wait_text("#invoke-result", "200 OK").await;
    b.wait_text("#invoke-result", "hi from the browser").await;
    b.shot("04-invoke-sync").await;

    // Async: the call id, then its state until final.
    b.choose("#invoke-mode", "async").await;
    b.click_button("Invoke").await;
    b.wait_text("#invoke-result", "202 Accepted").await;
    b.wait_text("#invoke-result [data-state]", "succeeded")
        .await;
    b.shot("05-invoke-async").await;
    // Listed among the recent calls, and the history is charted.
    b.wait_text("#recent-calls [data-state]", "succeeded").await;
    b.choose("#history-range", "15m").await;
    b.wait_text("#history", "Replicas: now desired 1").await;
    b.shot("10-function-history").await;

    // A function that always fails: its async call ends in the dead letters; redrive it.
    deploy(&b, "broken", &image.tag, "ECHO_STATUS=500").await;
    b.wait_text("main", "1 ready / 1 desired").await;
    b.choose("#invoke-mode", "async").await;
    b.click_button("Invoke").await;
    b.wait_text("#invoke-result [data-state]", "dead_lettered")
        .await;
    b.click_link("Dead letters").await;
    b.wait_text("main", "broken.openfaas-fn").await;
    b.wait_text("tr[data-queue='faas-request']", "faas-request")
        .await;
    b.shot("06-dead-letters").await;
    b.accept_confirms().await;
    b.click_button("Redrive").await;
    b.wait_text("#status", "Redriven").await;

    // The list: calls (sync and async), memory per replica from the provider's usage.
    b.click_link("Functions").await;
    b.wait_text("main table", "broken").await;
    b.wait_text("tr[data-function='hello'] td[data-calls]", "2")
        .await;
    b.wait_text("tr[data-function='hello'] td:last-child", "iB")
        .await;
    b.shot("02-functions").await;
    keyboard_walk(&b).await;

    // At a phone's width too.
    b.click_link("Functions").await;
    b.wait_text("main table", "broken").await;
    b.client.set_window_size(360, 800).await.unwrap();
    b.shot("07-functions-360px").await;
    b.client.set_window_size(1280, 900).await.unwrap();

    // Scale to zero, then delete, from the function's page.
    b.goto(&gateway.url("/ui/#/function/openfaas-fn/hello"))
        .await;
    b.wait_text("main", "1 ready / 1 desired").await;
    b.click_button("Scale to zero").await;
    b.wait_text("#status", "Scaling hello to 0").await;
    let login = (credentials.user(), credentials.password());
    wait_until("hello has 0 replicas", MINUTE, || async {
        let (code, status) = api_get(gateway, login, "/system/function/hello").await;
        // As in OpenFaaS, zero replicas are left out of the JSON.
        code == 200 && status["replicas"].as_u64().unwrap_or(0) == 0
    })
    .await;
    b.accept_confirms().await;
    b.click_button("Delete").await;
    b.wait_text("#status", "Deleted hello").await;
    wait_until("hello is gone", MINUTE, || async {
        api_get(gateway, login, "/system/function/hello").await.0 == 404
    })
    .await;
    b.click_link("Secrets").await;
    b.wait_text("h1", "Secrets").await;
    b.shot("08-secrets").await;
    b.quit().await;
}

/// From the functions list to a sync call with the keyboard only. A page opens with the focus
/// on its content, so Tab goes on into it; Shift+Tab goes back through the navigation to the
/// skip link, whose Enter returns to the content without changing the route; Tab reaches the
/// function's link, Enter opens it, Tab reaches the body field and the Invoke button, Enter
/// invokes. Every control on both pages has an accessible name.
async fn keyboard_walk(b: &Browser) {
    assert_eq!(b.unlabelled_controls().await, Vec::<String>::new());
    assert!(
        b.focused().await.starts_with("main#view"),
        "{}",
        b.focused().await
    );
    let passed = b.back_to("Skip to content", 10).await;
    for link in [
        "Secrets",
        "Dead letters",
        "Async calls",
        "Deploy",
        "Functions",
    ] {
        assert!(
            passed.iter().any(|p| p.ends_with(&format!("\"{link}\""))),
            "{link}: {passed:?}"
        );
    }
    b.press(Key::Enter).await;
    assert!(
        b.focused().await.starts_with("main#view"),
        "{}",
        b.focused().await
    );
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/"), "the skip link keeps the route");
    let passed = b.tab_to("a# \"hello\"", 12).await;
    assert!(passed[0].starts_with("select#namespace"), "{passed:?}");
    b.press(Key::Enter).await;
    b.wait_text("h1", "hello").await;
    b.wait_text("main", "1 ready / 1 desired").await;
    assert_eq!(b.unlabelled_controls().await, Vec::<String>::new());
    b.tab_to("textarea#invoke-body", 60).await;
    b.type_text("typed, not clicked").await;
    let passed = b.tab_to("button# \"Invoke\"", 3).await;
    assert_eq!(passed.len(), 1, "{passed:?}");
    b.press(Key::Enter).await;
    b.wait_text("#invoke-result", "typed, not clicked").await;
}

/// Fills the deploy form and submits it; ends on the function's page.
async fn deploy(b: &Browser, name: &str, image: &str, env: &str) {
    b.click_link("Deploy").await;
    b.wait_text("h1", "Deploy a function").await;
    b.fill("#deploy-service", name).await;
    b.fill("#deploy-image", "no such image").await;
    b.click_button("Deploy").await;
    // The API's error, next to the field it is about.
    wait_until(
        "the image error is shown by the image field",
        MINUTE,
        || async { !b.text("#deploy-image-error").await.is_empty() },
    )
    .await;
    b.shot("09-deploy-error").await;
    b.fill("#deploy-image", image).await;
    b.fill("#deploy-envVars", env).await;
    b.click_button("Deploy").await;
    b.wait_text("h1", name).await;
}

/// `GET path` on the gateway with basic auth: status and JSON body.
async fn api_get(
    gateway: &TestGateway,
    (user, password): (&str, &str),
    path: &str,
) -> (u16, Value) {
    let response = http_client()
        .get(gateway.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("calling the gateway");
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}
