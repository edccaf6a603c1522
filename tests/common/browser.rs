//! A real browser for the page tests: Debian's `chromium` driven through `chromedriver`
//! (WebDriver, fantoccini), headless, with a fresh profile, on loopback only. When the
//! browser is missing the tests skip with a notice, unless `REDEEMD_REQUIRE_BROWSER=1`
//! (set by `.ci/run`), under which a missing browser fails. Screenshots go to
//! `target/screenshots/`.
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    /// The browser's own runtime: the tests stay synchronous (the daemon helper has one too).
    rt: tokio::runtime::Runtime,
    pub client: Client,
    driver: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where screenshots are kept.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium and chromedriver, or None (skip, with a notice) when either is missing and
/// the environment does not require them.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = find("REDEEMD_CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let driver = find("REDEEMD_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        if std::env::var("REDEEMD_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("REDEEMD_REQUIRE_BROWSER=1 but chromium or chromedriver is missing (apt-get install chromium chromium-driver)");
        }
        eprintln!("NOTICE: chromium/chromedriver not found: browser test skipped (install chromium chromium-driver)");
        return None;
    };
    Some((chromium, driver))
}

/// The flags every test's chromium runs with (headless, no sandbox as root, nothing that
/// reaches the network), without a profile or window size.
pub const HEADLESS_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
];

fn start_driver(driver: &Path) -> (Child, u16) {
    let port = free_port();
    let driver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, port)
}

impl Browser {
    /// A WebDriver session with a chromium someone else started (with
    /// `--remote-debugging-port`), at `debugger` (`127.0.0.1:PORT`): its first page. The
    /// browser is left running when this is dropped.
    pub fn attach(debugger: &str) -> Option<Browser> {
        let (_, driver) = binaries()?;
        let (driver, port) = start_driver(&driver);
        let capabilities = json!({"goog:chromeOptions": {"debuggerAddress": debugger}});
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .expect("a WebDriver session with the running chromium")
        });
        Some(Browser { rt, client, driver, port, _profile: tempfile::tempdir().unwrap() })
    }

    /// A headless chromium with a `width`×`height` window, or None (skip) when there is
    /// none and the environment does not require one.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        let (chromium, driver) = binaries()?;
        let port = free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .expect("a WebDriver session with chromium")
        });
        // --window-size sizes the window, not the page: grow it by the browser's own frame
        // so the page itself gets width×height, as a kiosk screen would.
        rt.block_on(async {
            let v = client
                .execute(
                    "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
                    vec![],
                )
                .await
                .unwrap();
            let (dx, dy) = (v[0].as_u64().unwrap_or(0) as u32, v[1].as_u64().unwrap_or(0) as u32);
            if dx > 0 || dy > 0 {
                client.set_window_size(width + dx, height + dy).await.unwrap();
            }
        });
        Some(Browser { rt, client, driver, port, _profile: profile })
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(async {
            self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
        })
    }

    /// Waits (bounded) until the element's text contains `needle`; returns the text.
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
        self.rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = match self.client.find(Locator::Css(css)).await {
                    Ok(e) => e.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                if text.contains(needle) {
                    return text;
                }
                assert!(Instant::now() < deadline, "{css} never showed {needle:?}; it shows {text:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// Waits (bounded) until the page's event stream is connected (`data-live` on body).
    pub fn wait_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.js("return document.body.dataset.live === '1'") != Value::Bool(true) {
            assert!(Instant::now() < deadline, "the page's event stream never connected");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&self, css: &str) -> String {
        self.rt.block_on(async {
            self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
        })
    }

    /// The element's text, or None while it is not there (a page still navigating).
    pub fn try_text(&self, css: &str) -> Option<String> {
        self.rt.block_on(async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })
    }

    pub fn visible(&self, css: &str) -> bool {
        self.rt.block_on(async {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.is_displayed().await.unwrap_or(false),
                Err(_) => false,
            }
        })
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let e = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        })
    }

    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap();
            e.click().await.unwrap_or_else(|err| panic!("click {css}: {err}"));
        })
    }

    pub fn js(&self, script: &str) -> Value {
        self.rt.block_on(async {
            self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
        })
    }

    /// Saves a PNG of the window under `target/screenshots/NAME.png` and prints its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        self.rt.block_on(async {
            let png = self.client.screenshot().await.unwrap();
            let path = screenshot_dir().join(format!("{name}.png"));
            std::fs::write(&path, png).unwrap();
            println!("screenshot: {}", path.display());
            path
        })
    }

    /// The page printed to PDF on A4 (WebDriver's Print Page, 12 mm margins as the
    /// sheet's `@page` asks; no shrinking, so a page count is the page's own).
    pub fn print_pdf(&self) -> Vec<u8> {
        use fantoccini::wd::{PrintConfiguration, PrintMargins, PrintSize};
        self.rt.block_on(async {
            let config = PrintConfiguration::builder()
                .size(PrintSize::A4)
                .margins(PrintMargins { top: 1.2, bottom: 1.2, left: 1.2, right: 1.2 })
                .shrink_to_fit(false)
                .build()
                .unwrap();
            self.client.print(config).await.unwrap_or_else(|e| panic!("print to PDF: {e}"))
        })
    }

    /// The page fits its width: nothing to scroll sideways.
    pub fn assert_no_horizontal_scroll(&self) {
        let v = self.js("return [document.documentElement.scrollWidth, window.innerWidth]");
        let (scroll, inner) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
        assert!(scroll <= inner, "horizontal scroll: content {scroll}px wide in a {inner}px window");
    }

    /// Every resource the page loaded came from `origin`.
    pub fn assert_same_origin(&self, origin: &str) {
        let names = self.js("return performance.getEntriesByType('resource').map(e => e.name)");
        for name in names.as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(name.starts_with(origin), "request outside the page's origin: {name}");
        }
    }

    /// The browser console's errors since the last call (chromedriver's log endpoint).
    pub fn console_errors(&self) -> Vec<String> {
        self.rt.block_on(async {
            let session = self.client.session_id().await.unwrap().unwrap();
            let url = format!("http://127.0.0.1:{}/session/{session}/se/log", self.port);
            let reply: Value = super::daemon::client()
                .build()
                .unwrap()
                .post(url)
                .json(&json!({"type": "browser"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or(Value::Null);
            reply["value"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .filter(|e| e["level"] == "SEVERE")
                        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    pub fn close(self) {
        let _ = self.rt.block_on(self.client.clone().close());
    }

    pub fn accept_alert(&self) {
        self.rt.block_on(self.client.accept_alert()).expect("an alert to accept");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Logs in to the manager's page in `lang` with `pin` and waits for the day's totals.
pub fn manager_login(b: &Browser, base: &str, lang: &str, pin: &str) {
    b.goto(&format!("{base}/manager?lang={lang}"));
    b.type_into("#pin", pin);
    b.click("#login-form button");
    b.wait_text("#total-coupons", "");
}

/// Copies a screenshot to `docs/screenshots/` for the README.
pub fn keep(shot: &std::path::Path) {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let _ = std::fs::create_dir_all(&docs);
    if let Some(name) = shot.file_name() {
        let _ = std::fs::copy(shot, docs.join(name));
    }
}
