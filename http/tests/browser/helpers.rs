//! Starting Chromium and the platform, and polling the page until it shows what we expect.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, EventSettings, FrontendSettings, ListenerSettings,
    LoggerSettings, MailerSettings, ReadAuth,
};
use troupe_http::cli::UpArgs;
use troupe_http::platform;
use url::Url;

/// How long the page gets to show an expected state.
pub const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn binary(var: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
    assert!(
        path.exists(),
        "{} is required for the browser tests but is missing; install it with `make services` \
         (scripts/services.d/50-chromium.sh) or point {var} at it",
        path.display()
    );
    path
}

/// Free loopback ports, all different and below the ephemeral range (so no outgoing
/// connection takes one before its server binds it).
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| troupe_testkit::free_port())
}

pub use troupe_testkit::common_settings as common;

/// `troupe up` with the console's page pointed at its broker and mail catcher, both of which
/// allow the console's origin (CORS).
pub struct Platform {
    /// The console's base URL.
    pub frontend: String,
    /// The broker's base URL.
    pub broker: String,
    /// The mail catcher's base URL.
    pub catcher: String,
    _data: TempDir,
}

impl Platform {
    pub async fn up() -> Platform {
        let data = tempfile::tempdir().expect("temp dir");
        let [broker_port, frontend_port, catcher_port] = free_ports::<3>();
        let frontend = format!("http://127.0.0.1:{frontend_port}");
        let broker = format!("http://127.0.0.1:{broker_port}");
        let mut auth = AuthSettings::embedded(data.path(), SECRET.into());
        auth.db_timeout = Duration::from_secs(2);
        let broker_settings = BrokerSettings {
            broker_port,
            cors_allowed_origins: vec![frontend.clone()],
            request_timeout: Duration::from_secs(5),
            read_auth: ReadAuth::Auto,
        };
        let catcher = format!("http://127.0.0.1:{catcher_port}");
        let frontend_settings = FrontendSettings {
            frontend_port,
            broker_url: Url::parse(&broker).expect("url"),
            catcher_url: Url::parse(&catcher).expect("url"),
        };
        let mailer = MailerSettings { mail_host: None, ..MailerSettings::local(0) };
        let catcher_settings = CatcherSettings {
            catcher_http_port: catcher_port,
            catcher_cors_allowed_origins: vec![frontend.clone()],
            ..CatcherSettings::ephemeral(data.path())
        };
        let args = UpArgs {
            common: common(),
            broker: broker_settings,
            auth,
            logger: LoggerSettings::embedded(data.path()),
            frontend: frontend_settings,
            mailer,
            catcher: catcher_settings,
            events: EventSettings::embedded(data.path()),
            listener: ListenerSettings { listener_port: 0, ..ListenerSettings::default() },
        };
        let p = platform::up(&args).expect("platform starts");
        actix_web::rt::spawn(p.run_until(std::future::pending()));
        let http = reqwest::Client::new();
        eventually("the platform to report ready", || async {
            let res = http.get(format!("{broker}/readyz")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await;
        Platform { frontend, broker, catcher, _data: data }
    }

    /// The data directory (`TROUPE_DATA_DIR`) of this platform.
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }
}

/// A headless Chromium behind its own chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let [port] = free_ports::<1>();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let wait_driver = eventually("chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        });
        if let Err(panic) = std::panic::AssertUnwindSafe(wait_driver).catch_unwind().await {
            let _ = driver.kill();
            std::panic::resume_unwind(panic);
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium.display().to_string(), "args": args },
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object") };
        let client = ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&webdriver).await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                panic!("Chromium did not start through chromedriver: {e}");
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Run `test` with a fresh browser, closing Chromium afterwards even when it panics.
    pub async fn with<F, Fut>(test: F)
    where
        F: FnOnce(Browser) -> Fut,
        Fut: Future<Output = Browser>,
    {
        let browser = Browser::start().await;
        let session = browser.client.clone();
        let outcome = std::panic::AssertUnwindSafe(test(browser)).catch_unwind().await;
        let _ = session.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
        self.client.wait().at_most(PATIENCE).for_element(Locator::Css("body")).await.expect("page loads");
    }

    /// Click the element matching `css`. When the page re-renders between finding the element
    /// and clicking it (a stale element), find it again and retry, until `PATIENCE`.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let el = self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await;
            let el = el.unwrap_or_else(|e| panic!("no {css}: {e}"));
            match el.click().await {
                Ok(_) => return,
                Err(e)
                    if e.to_string().contains("stale element") && tokio::time::Instant::now() < deadline => {}
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// The visible text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Poll until the element's text contains `needle`; return the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} never showed {needle:?}; it shows {text:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Run a script in the page and return its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Save a PNG of the page to `target/screenshots/<name>.png` (and to `docs/screenshots/`
    /// with `UPDATE_SCREENSHOTS=1`).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        let mut dirs = vec![target.join("screenshots")];
        if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            dirs.push(root.join("docs").join("screenshots"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).expect("screenshot dir");
            std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
        }
    }
}

/// Retry `probe` every 100 ms until it returns `Some`, for at most [`PATIENCE`].
pub async fn poll<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`poll`], panicking with `what` when it runs out of patience.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(probe).await.unwrap_or_else(|| panic!("timed out waiting for {what}"))
}
