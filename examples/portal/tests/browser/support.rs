//! Chromium over WebDriver, the portal served to it, and `oathtool`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use verrou::clock::ClockError;
use verrou::testing::InsecureManualClock;
use verrou::{Clock, SystemClock, Timestamp};

/// Everything the portal logs, kept for the scan.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The code an app shows at the portal's time, from an independent implementation.
pub fn oathtool(key: &str, clock: &InsecureManualClock) -> String {
    oathtool_at(key, clock.now().unwrap().unix_seconds())
}

pub struct Browser {
    pub client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(driver: &str, base: &str, extra: &[String]) -> Self {
        let chromium =
            std::env::var("VERROU_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1100,900",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(driver)
            .await
            .unwrap_or_else(|error| {
                panic!("no WebDriver session ({error}): is chromedriver installed?")
            });
        Self {
            client,
            base: base.to_owned(),
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}{query}", url.path())
    }

    /// Waits until the page is at `path` (the binding page moves on by itself).
    pub async fn wait_for(&self, path: &str) {
        for _ in 0..100 {
            if self.path().await.starts_with(path) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "never reached {path}; at {} showing {}",
            self.path().await,
            self.source().await
        );
    }

    pub async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("input[name='{name}']")))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub async fn sign_in(&self, login: &str, password: &str) {
        self.goto("/sign-in").await;
        self.fill("login", login).await;
        self.fill("password", password).await;
        self.click("main form button").await;
    }

    pub async fn cookies(&self) -> Vec<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| c.value().to_owned())
            .collect()
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = if std::env::var_os("VERROU_UPDATE_SCREENSHOTS").is_some() {
            root.join("docs/screenshots")
        } else {
            root.join("target/screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// The code an app shows at `unix_seconds`, from `oathtool`.
pub fn oathtool_at(key: &str, unix_seconds: u64) -> String {
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{unix_seconds}"), key])
        .output()
        .unwrap_or_else(|error| {
            panic!("oathtool could not run ({error}); install oathtool (scripts/test does)")
        });
    assert!(
        output.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A chromedriver on a free port, and its URL.
pub async fn chromedriver() -> (tokio::process::Child, String) {
    let port = free_port();
    let driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "chromedriver could not run ({error}); install chromium-driver (scripts/test does)"
            )
        });
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

impl Browser {
    /// The browser's cookies for the portal, by name.
    pub async fn named_cookies(&self) -> Vec<(String, String)> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect()
    }
}

/// The system's time plus an offset the test moves (Chromium lives in real time; the
/// instances' view of the bound cookie's age, and the TOTP steps, can be pushed on).
#[derive(Clone)]
pub struct Skewed(pub Arc<AtomicU64>);

impl Clock for Skewed {
    fn now(&self) -> Result<Timestamp, ClockError> {
        let offset = Duration::from_secs(self.0.load(Ordering::SeqCst));
        Ok(SystemClock.now()?.saturating_add(offset))
    }
}

impl Skewed {
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn unix(&self) -> u64 {
        self.now().unwrap().unix_seconds()
    }
}

/// The device bindings registered in `portal`'s audit trail (by kind), and how many signed
/// refreshes it recorded.
pub async fn bindings(
    portal: &verrou_portal::app::Portal,
) -> (Vec<verrou::session::BindingKind>, usize) {
    use verrou::AuditKind;
    let trail = portal.verrou.audit_trail(None, 1_000).await.unwrap();
    let kinds = trail
        .iter()
        .filter_map(|event| match event.kind {
            AuditKind::BindingRegistered { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    let refreshes = trail
        .iter()
        .filter(|event| matches!(event.kind, AuditKind::BindingRefreshed { .. }))
        .count();
    (kinds, refreshes)
}
