//! The portal in headless Chromium, driven over WebDriver (chromedriver): sign-in, forced
//! enrolment with the key read from the page and the code computed by `oathtool`, recovery
//! codes, the job-seeker list, sign-out, sign-in with a code, the same code refused, a
//! recovery-code sign-in, and a second browser revoking the first, which is signed out at its
//! next request. Screenshots of the key pages go to `target/screenshots/` (to
//! `docs/screenshots/` with `VERROU_UPDATE_SCREENSHOTS=1`). The whole run logs at `trace`, and
//! every password, key, code, recovery code and cookie value it used is then searched for in
//! those logs.
//!
//! Needs `chromium`, `chromedriver` (Debian's `chromium-driver`) and `oathtool`; scripts/test
//! installs them. Without them the test fails, naming what is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use verrou::testing::{insecure_key_ring, InsecureManualClock};
use verrou::{Clock, Timestamp};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{Options, Portal, PortalClock};

/// Everything the portal logs, kept for the scan.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The code an app shows at the portal's time, from an independent implementation.
fn oathtool(key: &str, clock: &InsecureManualClock) -> String {
    let now = clock.now().unwrap().unix_seconds();
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{now}"), key])
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

struct Browser {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &str, base: &str) -> Self {
        let chromium =
            std::env::var("VERROU_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
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

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}{query}", url.path())
    }

    /// Waits until the page is at `path` (the binding page moves on by itself).
    async fn wait_for(&self, path: &str) {
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

    async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("input[name='{name}']")))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn sign_in(&self, login: &str, password: &str) {
        self.goto("/sign-in").await;
        self.fill("login", login).await;
        self.fill("password", password).await;
        self.click("main form button").await;
    }

    async fn cookies(&self) -> Vec<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| c.value().to_owned())
            .collect()
    }

    async fn screenshot(&self, name: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_goes_through_the_portal_in_chromium() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(1_800_000_000).unwrap());
    let options = Options {
        proxies: TrustedProxies::none(),
        demo_per_mille: 10,
    };
    let portal = Portal::open(
        dir.path(),
        insecure_key_ring().unwrap(),
        PortalClock(Arc::new(clock.clone())),
        options,
    )
    .await
    .unwrap();
    let accounts = portal.db.demo_accounts().await.unwrap();
    let password = accounts
        .iter()
        .find(|a| a.login == "paul")
        .unwrap()
        .password
        .clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let app = portal.clone().router();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let port = free_port();
    let mut driver = tokio::process::Command::new("chromedriver")
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
    let driver_url = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut used: Vec<String> = accounts
        .iter()
        .flat_map(|a| [Some(a.password.clone()), a.totp_secret.clone()])
        .flatten()
        .collect();

    // Sign-in, then enrolment: the key is read off the page, the code comes from oathtool.
    let laptop = Browser::open(&driver_url, &base).await;
    laptop.goto("/").await;
    laptop.wait_for("/sign-in").await;
    laptop.screenshot("sign-in").await;
    laptop.sign_in("paul", &password).await;
    laptop.wait_for("/enrol").await;
    assert!(laptop.source().await.contains("<svg"));
    laptop.screenshot("enrolment").await;
    let key = laptop.text("code.secret").await;
    clock.advance(Duration::from_secs(30));
    let code = oathtool(&key, &clock);
    used.extend([key.clone(), code.clone()]);
    laptop.fill("code", &code).await;
    laptop.click("main form button").await;
    // The binding page registers the browser's WebCrypto key, then goes on.
    laptop.wait_for("/account").await;

    // Recovery codes, shown once.
    laptop
        .click("form[action='/account/recovery-codes'] button")
        .await;
    laptop.wait_for("/account/recovery-codes").await;
    let listed = laptop.text("ol.codes").await;
    let codes: Vec<String> = listed
        .lines()
        .map(|line| line.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(codes.len(), 10, "{listed}");
    used.extend(codes.iter().cloned());
    laptop.screenshot("recovery-codes").await;

    // The job-seekers.
    laptop.goto("/seekers").await;
    assert!(laptop
        .source()
        .await
        .contains("Job-seekers followed by Formation Nord"));
    laptop.screenshot("job-seekers").await;
    used.extend(laptop.cookies().await);

    // Out, and in again with the next code.
    laptop.click("nav form button").await;
    laptop.wait_for("/sign-in").await;
    laptop.sign_in("paul", &password).await;
    laptop.wait_for("/second-factor").await;
    laptop.screenshot("second-factor").await;
    clock.advance(Duration::from_secs(30));
    let code = oathtool(&key, &clock);
    used.push(code.clone());
    laptop.fill("code", &code).await;
    laptop.click("main form button").await;
    laptop.wait_for("/seekers").await;
    used.extend(laptop.cookies().await);

    // The same code again, in a new session: refused.
    laptop.click("nav form button").await;
    laptop.wait_for("/sign-in").await;
    laptop.sign_in("paul", &password).await;
    laptop.wait_for("/second-factor").await;
    laptop.fill("code", &code).await;
    laptop.click("main form button").await;
    assert_eq!(laptop.text(".error").await, "That code was not accepted.");

    // A recovery code instead.
    laptop
        .click("a[href^='/second-factor?method=recovery']")
        .await;
    laptop.fill("code", &codes[0]).await;
    laptop.click("main form button").await;
    laptop.wait_for("/seekers").await;
    used.extend(laptop.cookies().await);

    // A second browser signs in and signs every other session out.
    let phone = Browser::open(&driver_url, &base).await;
    phone.sign_in("paul", &password).await;
    phone.wait_for("/second-factor").await;
    clock.advance(Duration::from_secs(30));
    let code = oathtool(&key, &clock);
    used.push(code.clone());
    phone.fill("code", &code).await;
    phone.click("main form button").await;
    phone.wait_for("/seekers").await;
    phone.goto("/sessions").await;
    assert_eq!(
        phone.source().await.matches("<tr>").count(),
        3,
        "two sessions listed"
    );
    phone.screenshot("sessions").await;
    phone
        .click("form[action='/sessions/revoke-others'] button")
        .await;
    phone.wait_for("/sessions?notice=others").await;
    used.extend(phone.cookies().await);

    // The laptop's next request: back to sign-in.
    laptop.goto("/seekers").await;
    laptop.wait_for("/sign-in").await;

    laptop.client.close().await.unwrap();
    phone.client.close().await.unwrap();
    driver.kill().await.ok();
    server.abort();

    // Nothing the run used that could sign anyone in is in the logs.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 100,
        "the run logged at trace: {} lines",
        logs.lines().count()
    );
    assert!(
        logs.contains("session_created") && logs.contains("TRACE"),
        "the capture holds the run's events"
    );
    used.retain(|value| value.len() >= 6);
    for value in &used {
        assert!(
            !logs.contains(value.as_str()),
            "a secret of the run is in the logs"
        );
    }
    println!(
        "{} log lines scanned for {} secrets",
        logs.lines().count(),
        used.len()
    );
}
