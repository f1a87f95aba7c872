//! Headless Chromium driven through chromedriver (Debian's `chromium` and `chromium-driver`,
//! installed by `make deps`): started on a free loopback port for one test, quit and killed
//! when dropped. Screenshots go to `target/dashboard/<name>.png` as test artefacts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use ferry_tests::{free_port, http_client, wait_until};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

/// chromedriver and one browser session.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    shots: PathBuf,
}

impl Browser {
    /// A headless Chromium `width` × `height` pixels.
    pub(crate) async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver (make deps installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        wait_until("chromedriver answers", PATIENCE, || async {
            http_client()
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok()
        })
        .await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", format!("--window-size={width},{height}")]}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a chromedriver session");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard");
        std::fs::create_dir_all(&shots).expect("creating target/dashboard");
        Browser {
            client,
            driver,
            shots,
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigating");
    }

    /// The element `css` once it is there.
    pub(crate) async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Types `text` into the (cleared) field `css`.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clearing a field");
        field.send_keys(text).await.expect("typing");
    }

    /// Chooses `value` in the select `css`.
    pub(crate) async fn choose(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        select.select_by_value(value).await.expect("choosing");
    }

    /// Clicks the link whose text is exactly `text`.
    pub(crate) async fn click_link(&self, text: &str) {
        self.click(&format!("//a[normalize-space()='{text}']"))
            .await;
    }

    /// Clicks the button whose text is exactly `text`.
    pub(crate) async fn click_button(&self, text: &str) {
        self.click(&format!("//button[normalize-space()='{text}']"))
            .await;
    }

    async fn click(&self, xpath: &str) {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {xpath}: {e}"))
            .click()
            .await
            .expect("clicking");
    }

    /// The visible text of `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_default()
    }

    /// Waits until the text of `css` contains `wanted`.
    pub(crate) async fn wait_text(&self, css: &str, wanted: &str) {
        wait_until(&format!("{css} shows {wanted:?}"), PATIENCE, || async {
            let element = self.client.find(Locator::Css(css)).await;
            match element {
                Ok(e) => e.text().await.unwrap_or_default().contains(wanted),
                Err(_) => false,
            }
        })
        .await;
    }

    /// Saves a screenshot as `target/dashboard/<name>.png`.
    pub(crate) async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("saving a screenshot");
    }

    /// Accepts the page's `confirm()` dialogs from now on.
    pub(crate) async fn accept_confirms(&self) {
        self.client
            .execute("window.confirm = () => true;", vec![])
            .await
            .expect("replacing confirm");
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
