//! A partner's whole path through the portal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use verrou::testing::{insecure_key_ring, InsecureManualClock};
use verrou::Timestamp;
use verrou_axum::TrustedProxies;
use verrou_portal::app::{Options, Portal, PortalClock};

use crate::support::{chromedriver, oathtool, Browser, Captured};

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
        database: None,
        proxies: TrustedProxies::none(),
        demo_per_mille: 10,
        bound_cookie: Duration::from_secs(300),
        exports: verrou_portal::app::ExportLimits::default(),
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
    let (mut driver, driver_url) = chromedriver().await;
    let mut used: Vec<String> = accounts
        .iter()
        .flat_map(|a| [Some(a.password.clone()), a.totp_secret.clone()])
        .flatten()
        .collect();

    // Sign-in, then enrolment: the key is read off the page, the code comes from oathtool.
    let laptop = Browser::open(&driver_url, &base, &[]).await;
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
    let phone = Browser::open(&driver_url, &base, &[]).await;
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
