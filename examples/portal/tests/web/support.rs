//! A portal on a temporary directory and a hand-driven clock, and a browser's cookie jar.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::{Clock, Timestamp, TotpParams, TotpSecret};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{ExportLimits, Options, Portal, PortalClock};
use verrou_portal::data::DemoAccount;
use verrou_portal::keys::KeySource;

pub const PEER: &str = "198.51.100.20:50000";

pub struct Lab {
    pub portal: Portal,
    pub clock: InsecureManualClock,
    pub accounts: Vec<DemoAccount>,
    keys: KeySource,
    database: Option<String>,
    dir: Arc<tempfile::TempDir>,
}

async fn open(
    dir: &std::path::Path,
    keys: &KeySource,
    clock: &InsecureManualClock,
    database: Option<String>,
    exports: ExportLimits,
    proxies: TrustedProxies,
) -> Portal {
    let options = Options {
        database,
        proxies,
        demo_per_mille: 10,
        bound_cookie: Duration::from_secs(300),
        exports,
    };
    let clock = PortalClock(Arc::new(clock.clone()));
    Portal::open(dir, keys.clone(), clock, options)
        .await
        .unwrap()
}

impl Lab {
    pub async fn new() -> Self {
        Self::with(TrustedProxies::none()).await
    }

    pub async fn with(proxies: TrustedProxies) -> Self {
        Self::build(proxies, ExportLimits::default()).await
    }

    pub async fn build(proxies: TrustedProxies, exports: ExportLimits) -> Self {
        Self::on(None, proxies, exports).await
    }

    /// A portal on `database` (a PostgreSQL URL), or on SQLite files when `None`.
    pub async fn on(
        database: Option<String>,
        proxies: TrustedProxies,
        exports: ExportLimits,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(1_800_000_000).unwrap());
        // A key file, as the binary keeps it: every instance reads it, and re-reads it on
        // `reload_keys`.
        let keys = KeySource::file_created_if_missing(&dir.path().join("verrou-keys")).unwrap();
        let portal = open(
            dir.path(),
            &keys,
            &clock,
            database.clone(),
            exports,
            proxies,
        )
        .await;
        let accounts = portal.db.demo_accounts().await.unwrap();
        // The import used the current step: the apps' next code is the next step's.
        clock.advance(Duration::from_secs(30));
        Self {
            portal,
            clock,
            accounts,
            keys,
            database,
            dir: Arc::new(dir),
        }
    }

    /// A second instance of the portal on the same database (and clock, and configuration
    /// directory: the CSRF key every instance shares).
    pub async fn second_instance(&self) -> Portal {
        let (database, exports) = (self.database.clone(), self.portal.exports);
        let proxies = TrustedProxies::none();
        open(
            self.dir.path(),
            &self.keys,
            &self.clock,
            database,
            exports,
            proxies,
        )
        .await
    }

    /// The second instance as a lab of its own, sharing everything else.
    pub async fn twin(&self) -> Lab {
        Lab {
            portal: self.second_instance().await,
            clock: self.clock.clone(),
            accounts: self.accounts.clone(),
            keys: self.keys.clone(),
            database: self.database.clone(),
            dir: self.dir.clone(),
        }
    }

    /// The instances' key file (owner-only), which `Portal::reload_keys` reads.
    pub fn key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("verrou-keys")
    }

    pub fn app(&self) -> Router {
        self.portal.clone().router()
    }

    pub fn account(&self, login: &str) -> &DemoAccount {
        self.accounts.iter().find(|a| a.login == login).unwrap()
    }

    /// The code `login`'s app shows now.
    pub fn code(&self, login: &str) -> String {
        let secret = self.account(login).totp_secret.clone().unwrap();
        code_for(&secret, &self.clock)
    }

    /// A browser signed in with `login`'s password and second factor, its device bound by the
    /// DBSC endpoint (played with a test key).
    pub async fn signed_in(&self, login: &str) -> Browser {
        let mut browser = Browser::default();
        let password = self.account(login).password.clone();
        let response = browser.sign_in(self, login, &password).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        self.clock.advance(Duration::from_secs(30));
        let code = self.code(login);
        let response = browser
            .submit(
                self,
                "/second-factor",
                "/second-factor",
                &[("code", &code), ("method", "totp")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "second factor refused");
        browser.bind(self, &response).await;
        browser
    }
}

impl Lab {
    /// A fresh browser signs in as `login` and sends `code` as the second factor: the answer.
    pub async fn try_code(&self, login: &str, code: &str) -> Response<Body> {
        let mut browser = Browser::default();
        let password = self.account(login).password.clone();
        browser.sign_in(self, login, &password).await;
        browser
            .submit(self, "/second-factor", "/second-factor", &[("code", code)])
            .await
    }

    /// `count` wrong codes for `login`, each an hour after the last (past every backoff).
    pub async fn fail_codes(&self, login: &str, count: usize) {
        for _ in 0..count {
            self.clock.advance(Duration::from_secs(3600));
            self.try_code(login, "000000").await;
        }
    }
}

pub fn code_for(secret: &str, clock: &InsecureManualClock) -> String {
    let secret = TotpSecret::from_base32(secret).unwrap();
    insecure_code_at(&secret, TotpParams::DEFAULT, clock.now().unwrap())
}

/// A browser: its cookies, and the device key it binds sessions with.
#[derive(Default)]
pub struct Browser {
    pub cookies: BTreeMap<String, String>,
    pub peer: Option<String>,
    pub device: Option<verrou::testing::InsecureDevice>,
}

impl Browser {
    pub fn request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        self.request_from("same-origin", method, uri)
    }

    /// A request as a page of `site` (`Sec-Fetch-Site`) makes it.
    pub fn request_from(
        &self,
        site: &str,
        method: &str,
        uri: &str,
    ) -> axum::http::request::Builder {
        self.own_request(method, uri)
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-site", site)
            .header(header::ACCEPT, "text/html")
    }

    /// A request from this browser's address with its cookies.
    fn own_request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        let peer: SocketAddr = self.peer.as_deref().unwrap_or(PEER).parse().unwrap();
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .extension(ConnectInfo(peer));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            builder = builder.header(header::COOKIE, jar.join("; "));
        }
        builder
    }

    /// A script's request to the JSON API: marked with `X-Portal-Api`, JSON if `body`.
    pub fn api(&self, method: &str, uri: &str, body: Option<&str>) -> Request<Body> {
        let builder = self.own_request(method, uri).header("x-portal-api", "1");
        match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        }
    }

    pub async fn send(&mut self, lab: &Lab, request: Request<Body>) -> Response<Body> {
        let response = lab.app().oneshot(request).await.unwrap();
        self.take(&response);
        response
    }

    pub async fn get(&mut self, lab: &Lab, uri: &str) -> Response<Body> {
        let request = self.request("GET", uri).body(Body::empty()).unwrap();
        self.send(lab, request).await
    }

    /// Loads `page` for its CSRF token, then posts `fields` (and the token) to `action`.
    pub async fn submit(
        &mut self,
        lab: &Lab,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Response<Body> {
        let html = text(self.get(lab, page).await).await;
        let token = csrf_in(&html).unwrap_or_else(|| panic!("no form on {page}: {html}"));
        self.post(lab, action, &token, fields).await
    }

    pub async fn post(
        &mut self,
        lab: &Lab,
        action: &str,
        token: &str,
        fields: &[(&str, &str)],
    ) -> Response<Body> {
        let mut all = vec![("csrf", token)];
        all.extend_from_slice(fields);
        let body = serde_urlencoded::to_string(&all).unwrap();
        let request = self
            .request("POST", action)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        self.send(lab, request).await
    }

    pub async fn sign_in(&mut self, lab: &Lab, login: &str, password: &str) -> Response<Body> {
        self.submit(
            lab,
            "/sign-in",
            "/sign-in",
            &[("login", login), ("password", password)],
        )
        .await
    }

    /// Binds the session the way a DBSC browser does, from the page after the second factor.
    pub async fn bind(&mut self, lab: &Lab, page: &Response<Body>) {
        let offer = page.headers()["secure-session-registration"]
            .to_str()
            .unwrap();
        let challenge = offer
            .split("challenge=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let device = verrou::testing::InsecureDevice::generate().unwrap();
        let request = self
            .request("POST", "/verrou/dbsc/register")
            .header(
                "secure-session-response",
                device.registration_proof(&challenge),
            )
            .body(Body::empty())
            .unwrap();
        let response = self.send(lab, request).await;
        assert_eq!(response.status(), StatusCode::OK, "registration refused");
        self.device = Some(device);
    }

    /// Renews the bound cookie with the device key, as the browser does before it expires.
    pub async fn renew(&mut self, lab: &Lab) {
        let ask = self
            .request("POST", "/verrou/dbsc/refresh")
            .body(Body::empty())
            .unwrap();
        let first = self.send(lab, ask).await;
        assert_eq!(first.status(), StatusCode::FORBIDDEN);
        let offered = first.headers()["secure-session-challenge"]
            .to_str()
            .unwrap();
        let challenge = offered.split('"').nth(1).unwrap().to_owned();
        let proof = self.device.as_ref().unwrap().refresh_proof(&challenge);
        let signed = self
            .request("POST", "/verrou/dbsc/refresh")
            .header("secure-session-response", proof)
            .body(Body::empty())
            .unwrap();
        assert_eq!(self.send(lab, signed).await.status(), StatusCode::OK);
    }

    fn take(&mut self, response: &Response<Body>) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (name, rest) = value.split_once('=').unwrap();
            let cookie = rest.split(';').next().unwrap().to_owned();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), cookie);
            }
        }
    }
}

pub fn csrf_in(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[start..].split('"').next()?.to_owned())
}

pub async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub fn location(response: &Response<Body>) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}
