//! A headless Chromium driven through `chromedriver` (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/test`), with screenshots saved under
//! `target/console-screenshots/` and the browser's console log read back.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// One chromedriver process and its browser session. The chromedriver runs in a process group
/// of its own, which is killed on drop (Chromium with it), whatever the test did.
pub struct Browser {
    pub client: Client,
    driver: Guard,
    _profile: tempfile::TempDir,
}

/// Where screenshots go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    crate::support::plugin_dir()
        .parent()
        .expect("target directory")
        .join("console-screenshots")
}

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: install Debian's {package} (.ci/test does, as root)"
    );
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session
    /// (1280×1000, or `width`×`height`).
    pub async fn start(width: u32, height: u32) -> Browser {
        require("chromedriver", "chromium-driver");
        require("chromium", "chromium");
        let mut command = Command::new("chromedriver");
        command
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut driver = command.spawn().expect("start chromedriver");
        let stdout = driver.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chromedriver did not start");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session");
        Browser {
            client,
            driver: Guard(driver),
            _profile: profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    /// Logs in on the console at `base` with `token`; returns the page's URL afterwards.
    pub async fn login(&self, base: &str, token: &str) -> String {
        self.goto(&format!("{base}/login")).await;
        let field = self
            .client
            .find(Locator::Css("#token"))
            .await
            .expect("token field");
        field.send_keys(token).await.expect("type the token");
        self.submit("form button[type=submit]").await;
        if self.wait_for("h1", Duration::from_secs(10)).await.is_none() {
            self.screenshot("debug-login").await;
            let source = self.client.source().await.unwrap_or_default();
            panic!("no page after login: {source}");
        }
        self.client.current_url().await.expect("url").to_string()
    }

    /// Clicks the first element matching `css`, waiting (up to 10 s) for it to appear: after a
    /// form was submitted the next page may still be loading.
    pub async fn click(&self, css: &str) {
        self.wait_for(css, Duration::from_secs(10)).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Clicks the first element matching `css` (a form's button) and waits, up to 10 s, until
    /// the page it was on is gone: the next page may have the same markers (a login page
    /// answering a login, Sources redirecting to Sources), so waiting for one of them could
    /// read the old page.
    pub async fn submit(&self, css: &str) {
        let before = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a page to submit from");
        self.click(css).await;
        let started = Instant::now();
        // A stale element (the old document was replaced) no longer answers.
        while before.tag_name().await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "clicking {css} loaded no new page"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css, Duration::from_secs(10)).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Polls every 50 ms until `css` matches an element, at most `within`; how long it took.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.client.find(Locator::Css(css)).await.is_ok() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Polls until the text of `css` contains `wanted` (at most 20 s); the text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{css} never contained {wanted:?}; last: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The browser console's entries at level SEVERE (errors: failed loads, CSP violations,
    /// uncaught exceptions) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the browser session (Chromium exits), then chromedriver.
    pub async fn close(self) {
        let Browser {
            client,
            driver,
            _profile,
        } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// Kills chromedriver's process group (chromedriver and the browser it started).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// ChromeDriver's log endpoint (`POST /session/{id}/se/log`, type "browser"): the console
/// messages `goog:loggingPrefs` asked it to keep.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}
