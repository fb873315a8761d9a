//! Device binding with the real browser, in the portal: Chromium's own DBSC over HTTPS (the
//! portal's `--tls` certificate, trusted by its pin, and the two features the DBSC notes name),
//! then the WebCrypto fallback with DBSC off. In both, the session and bound cookies taken from
//! the browser work from another client until the bound cookie expires, then are refused; the
//! thief gets a challenge it cannot sign.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt;
use verrou::session::BindingKind;
use verrou::testing::insecure_key_ring;
use verrou::Clock;
use verrou_axum::TrustedProxies;
use verrou_portal::app::{Options, Portal, PortalClock};

use crate::support::{bindings, chromedriver, oathtool_at, Browser, Skewed};

const BOUND_COOKIE_LIFE: Duration = Duration::from_secs(30);

/// A request from the thief's machine with the stolen cookies (a script's request: no page).
fn replay(cookies: &[(String, String)], method: &str, path: &str) -> Request<Body> {
    let jar: Vec<String> = cookies
        .iter()
        .filter(|(name, _)| name.starts_with("__Host-verrou"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, jar.join("; "))
        .extension(ConnectInfo(
            "203.0.113.66:40000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::empty())
        .unwrap()
}

async fn bind_and_steal(dbsc: bool) {
    let dir = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicU64::new(0));
    let options = Options {
        database: None,
        proxies: TrustedProxies::none(),
        demo_per_mille: 10,
        bound_cookie: BOUND_COOKIE_LIFE,
        exports: verrou_portal::app::ExportLimits::default(),
    };
    let clock = PortalClock(Arc::new(Skewed(offset.clone())));
    let portal = Portal::open(dir.path(), insecure_key_ring().unwrap(), clock, options)
        .await
        .unwrap();
    let marie = portal
        .db
        .demo_accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.login == "marie")
        .unwrap();
    let key = marie.totp_secret.clone().unwrap();

    let service = portal
        .clone()
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut args = Vec::new();
    let (base, server) = if dbsc {
        let tls = verrou_portal::tls::load_or_create(dir.path())
            .await
            .unwrap();
        args.push("--enable-features=DeviceBoundSessions:RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting".to_owned());
        args.push(format!("--ignore-certificate-errors-spki-list={}", tls.pin));
        let server = axum_server::from_tcp_rustls(listener, tls.config).unwrap();
        (
            format!("https://localhost:{port}"),
            tokio::spawn(async move { server.serve(service).await }),
        )
    } else {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        (
            format!("http://localhost:{port}"),
            tokio::spawn(async move { axum::serve(listener, service).await }),
        )
    };
    let (mut driver, driver_url) = chromedriver().await;
    let browser = Browser::open(&driver_url, &base, &args).await;

    // Password, then the next step's code (the import used the current one).
    browser.sign_in("marie", &marie.password).await;
    browser.wait_for("/second-factor").await;
    offset.fetch_add(30, Ordering::SeqCst);
    let now = portal.verrou.clock().now().unwrap().unix_seconds();
    browser.fill("code", &oathtool_at(&key, now)).await;
    browser.click("main form button").await;
    browser.wait_for("/seekers").await;
    let expected = if dbsc {
        BindingKind::Dbsc
    } else {
        BindingKind::WebCrypto
    };
    let (kinds, _) = bindings(&portal).await;
    assert_eq!(kinds, [expected], "one binding, by {expected:?}");

    // The browser renews its bound cookie with its key and the pages keep working.
    if dbsc {
        // A 30 s cookie is always within Chromium's 120 s refresh-ahead window.
        for _ in 0..50 {
            browser.goto("/seekers").await;
            if bindings(&portal).await.1 > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        // The server's clock passes the cookie's life: the next page load renews and reloads.
        offset.fetch_add(BOUND_COOKIE_LIFE.as_secs() + 1, Ordering::SeqCst);
        browser.goto("/seekers").await;
        browser.wait_for("/seekers").await;
    }
    for _ in 0..50 {
        if browser
            .source()
            .await
            .contains("Job-seekers followed by Formation Nord")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(browser
        .source()
        .await
        .contains("Job-seekers followed by Formation Nord"));
    let (_, refreshes) = bindings(&portal).await;
    assert!(
        refreshes >= 1,
        "the browser renewed its bound cookie with a signed proof"
    );

    // The infostealer: the cookies, from the browser's profile, replayed from elsewhere.
    let stolen = browser.named_cookies().await;
    let app = portal.clone().router();
    let fresh = app
        .clone()
        .oneshot(replay(&stolen, "GET", "/seekers"))
        .await
        .unwrap();
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "good until the bound cookie expires"
    );
    offset.fetch_add(BOUND_COOKIE_LIFE.as_secs() + 1, Ordering::SeqCst);
    let refused = app
        .clone()
        .oneshot(replay(&stolen, "GET", "/seekers"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = app
        .clone()
        .oneshot(replay(&stolen, "POST", "/verrou/dbsc/refresh"))
        .await
        .unwrap();
    assert_eq!(
        challenge.status(),
        StatusCode::FORBIDDEN,
        "a challenge the thief cannot sign"
    );
    assert!(challenge.headers().contains_key("secure-session-challenge"));

    browser.client.close().await.unwrap();
    driver.kill().await.ok();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_binds_with_dbsc_over_https_and_stolen_cookies_die() {
    bind_and_steal(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_binds_with_the_fallback_when_dbsc_is_off_and_stolen_cookies_die() {
    bind_and_steal(false).await;
}
