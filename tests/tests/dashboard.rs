//! The web dashboard (`/ui/`) in headless Chromium against the real stack: NATS, the Docker
//! provider with the echo function image, the gateway with basic auth, a queue-worker.
//!
//! Through the pages only, as a user would: log in with the generated credentials, deploy a
//! function and see it become ready, invoke it sync and async and see the async call
//! complete, deploy one that always fails and see its call dead-lettered, redrive it from the
//! dead-letter page, scale to zero, delete the function; the functions list at 360 px wide.
//! Every page is saved under `target/dashboard/` as a screenshot.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

#[path = "dashboard/browser.rs"]
mod browser;

use browser::Browser;
use ferry_tests::auth::AuthedStack;
use ferry_tests::gateway::TestGateway;
use ferry_tests::platform::{FAST_RETRIES, MINUTE};
use ferry_tests::worker::TestWorker;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deploys_invokes_watches_redrives_and_deletes_in_the_browser() {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let stack = AuthedStack::start(&guard, &nats).await;
    let (gateway, credentials) = (&stack.gateway, &stack.credentials);
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

    // The list, at a phone's width too.
    b.click_link("Functions").await;
    b.wait_text("main table", "broken").await;
    b.shot("02-functions").await;
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
