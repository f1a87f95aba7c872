//! Headless Chromium driven through chromedriver (Debian's `chromium` and `chromium-driver`,
//! installed by `make deps`): started on a free loopback port for one test, quit and killed
//! when dropped. Screenshots go to `target/dashboard/<name>.png` as test artefacts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
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

    /// Presses `key` where the focus is, as a keyboard does (WebDriver's key actions: no
    /// element is clicked or focused first).
    pub(crate) async fn press(&self, key: Key) {
        self.chord(None, key).await;
    }

    /// Presses `key` with `modifier` held.
    async fn chord(&self, modifier: Option<Key>, key: Key) {
        let value: char = key.into();
        let mut keys = KeyActions::new("keyboard".into());
        if let Some(m) = modifier {
            keys = keys.then(KeyAction::Down { value: m.into() });
        }
        keys = keys
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        if let Some(m) = modifier {
            keys = keys.then(KeyAction::Up { value: m.into() });
        }
        self.client
            .perform_actions(keys)
            .await
            .expect("pressing a key");
    }

    /// Types `text` where the focus is.
    pub(crate) async fn type_text(&self, text: &str) {
        let mut keys = KeyActions::new("keyboard".into());
        for value in text.chars() {
            keys = keys
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.client.perform_actions(keys).await.expect("typing");
    }

    /// The focused element, described as `tag#id "accessible text"`.
    pub(crate) async fn focused(&self) -> String {
        let script = r#"
            const e = document.activeElement;
            if (!e || e === document.body) return 'body';
            const text = e.getAttribute('aria-label')
              || (e.labels && e.labels.length ? e.labels[0].textContent : '')
              || e.textContent || '';
            return `${e.tagName.toLowerCase()}#${e.id} "${text.trim().slice(0, 60)}"`;
        "#;
        let value = self
            .client
            .execute(script, vec![])
            .await
            .expect("reading the focus");
        value.as_str().unwrap_or_default().to_string()
    }

    /// Presses Tab until the focused element's description contains `wanted` (at most `max`
    /// times); the descriptions passed on the way.
    pub(crate) async fn tab_to(&self, wanted: &str, max: usize) -> Vec<String> {
        self.walk(None, wanted, max).await
    }

    /// [`Browser::tab_to`] backwards (Shift+Tab).
    pub(crate) async fn back_to(&self, wanted: &str, max: usize) -> Vec<String> {
        self.walk(Some(Key::Shift), wanted, max).await
    }

    async fn walk(&self, modifier: Option<Key>, wanted: &str, max: usize) -> Vec<String> {
        let mut passed = Vec::new();
        for _ in 0..max {
            self.chord(modifier, Key::Tab).await;
            let now = self.focused().await;
            let found = now.contains(wanted);
            passed.push(now);
            if found {
                return passed;
            }
        }
        panic!("{wanted:?} not reached with {max} Tabs; focus went {passed:#?}");
    }

    /// The visible controls (links, buttons, fields) without an accessible name.
    pub(crate) async fn unlabelled_controls(&self) -> Vec<String> {
        let script = r#"
            const bad = [];
            for (const e of document.querySelectorAll('a[href], button, input, select, textarea')) {
              if (e.offsetParent === null) continue;
              const name = e.getAttribute('aria-label') || e.title
                || (e.labels ? [...e.labels].map((l) => l.textContent).join(' ') : '')
                || e.textContent || '';
              if (!name.trim()) bad.push(e.outerHTML.slice(0, 100));
            }
            return bad;
        "#;
        let value = self
            .client
            .execute(script, vec![])
            .await
            .expect("checking labels");
        serde_json::from_value(value).expect("a list")
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
