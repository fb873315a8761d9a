//! The breach behind verrou, replayed against the portal: two instances sharing one
//! PostgreSQL database (`VERROU_TEST_POSTGRES_URL`), a partner in Chromium bound by its own
//! DBSC over HTTPS, and an "infostealer" that takes the saved password and every cookie out of
//! the browser and uses them from another machine. What worked in the incident must fail here,
//! and the operators' answer must work live on both instances. The test prints a timeline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use verrou::session::BindingKind;
use verrou::store::KeyRotation;
use verrou::{AuditKind, KeyId, KeyRing};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{ExportLimits, Options, Portal, PortalClock};
use verrou_portal::data::DemoAccount;
use verrou_portal::keys::KeySource;

use crate::postgres::Schema;
use crate::support::{bindings, chromedriver, oathtool_at, Browser, Skewed};

const BOUND_COOKIE_LIFE: Duration = Duration::from_secs(30);
/// The thief's machine.
const THIEF: &str = "203.0.113.66:40000";

/// What happened, when, on which instance: printed at the end.
struct Timeline {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl Timeline {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            lines: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, instance: &str, what: impl AsRef<str>) {
        let elapsed = self.start.elapsed().as_secs_f32();
        let line = format!("{elapsed:6.1}s  {instance:<7} {}", what.as_ref());
        self.lines.lock().unwrap().push(line);
    }

    /// Prints the timeline, and keeps it in `target/breach-timeline.txt`.
    fn print(&self) {
        let mut text =
            "The breach, replayed (real seconds since the start; instance; what happened):\n"
                .to_owned();
        for line in self.lines.lock().unwrap().iter() {
            text.push_str(&format!("  {line}\n"));
        }
        println!("\n{text}");
        let target = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let _ = std::fs::write(target.join("breach-timeline.txt"), text);
    }
}

/// A client outside the browser: its cookies, its address, requests to one instance's
/// routes (a script's requests: the JSON API's header, no page headers).
struct Client {
    jar: BTreeMap<String, String>,
    peer: SocketAddr,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Client {
    fn new(peer: &str) -> Self {
        Self {
            jar: BTreeMap::new(),
            peer: peer.parse().unwrap(),
        }
    }

    /// The thief's copy of the browser's verrou cookies.
    fn with_stolen(cookies: &[(String, String)]) -> Self {
        let mut client = Self::new(THIEF);
        for (name, value) in cookies {
            if name.starts_with("__Host-verrou") {
                client.jar.insert(name.clone(), value.clone());
            }
        }
        client
    }

    async fn call(
        &mut self,
        app: &Router,
        method: &str,
        path: &str,
        sent: Option<Value>,
    ) -> Answer {
        let jar: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-portal-api", "1")
            .extension(ConnectInfo(self.peer));
        if !jar.is_empty() {
            request = request.header(header::COOKIE, jar.join("; "));
        }
        let request = match sent {
            Some(sent) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(sent.to_string())),
            None => request.body(Body::empty()),
        };
        let response = app.clone().oneshot(request.unwrap()).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Signs in over the API with a password and the app's current code.
    async fn sign_in(&mut self, app: &Router, account: &DemoAccount, clock: &Skewed) -> StatusCode {
        let credentials = json!({ "login": account.login, "password": account.password });
        let answer = self
            .call(app, "POST", "/api/sign-in", Some(credentials))
            .await;
        if answer.status != StatusCode::OK {
            return answer.status;
        }
        let key = account.totp_secret.as_deref().unwrap();
        let code = json!({ "code": oathtool_at(key, clock.unix()) });
        self.call(app, "POST", "/api/second-factor", Some(code))
            .await
            .status
    }
}

/// One instance: the portal on the shared database and files.
async fn instance(dir: &std::path::Path, database: &str, clock: &Skewed) -> Portal {
    let options = Options {
        database: Some(database.to_owned()),
        proxies: TrustedProxies::none(),
        demo_per_mille: 20,
        bound_cookie: BOUND_COOKIE_LIFE,
        // The defaults are 2,000 per export and 5,000 a day; the demo data here is 1/50th.
        exports: ExportLimits {
            per_export: 100,
            per_org_per_day: 250,
            ..ExportLimits::default()
        },
    };
    let keys = KeySource::file_created_if_missing(&dir.join("verrou-keys")).unwrap();
    Portal::open(dir, keys, PortalClock(Arc::new(clock.clone())), options)
        .await
        .unwrap()
}

/// Loads `path` in the browser until the page shows `text` (DBSC may hold a request while it
/// refreshes the bound cookie).
async fn shows(browser: &Browser, path: &str, text: &str) -> bool {
    for _ in 0..50 {
        browser.goto(path).await;
        if browser.source().await.contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breach_replayed_against_two_instances_fails_at_every_step() {
    let timeline = Timeline::new();
    let schema = Schema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Skewed(Arc::new(AtomicU64::new(0)));
    let a = instance(dir.path(), &schema.database, &clock).await;
    let b = instance(dir.path(), &schema.database, &clock).await;
    let (app_a, app_b) = (a.clone().router(), b.clone().router());
    let accounts = a.db.demo_accounts().await.unwrap();
    let account = |login: &str| accounts.iter().find(|a| a.login == login).unwrap().clone();
    let marie = account("marie");

    // Instance A serves HTTPS to the partner's Chromium, with its DBSC features on.
    let tls = verrou_portal::tls::load_or_create(dir.path())
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let server = axum_server::from_tcp_rustls(listener, tls.config).unwrap();
    let service = app_a
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { server.serve(service).await });
    let (mut driver, driver_url) = chromedriver().await;
    let args = [
        "--enable-features=DeviceBoundSessions:RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting".to_owned(),
        format!("--ignore-certificate-errors-spki-list={}", tls.pin),
    ];
    let browser = Browser::open(&driver_url, &base, &args).await;
    timeline.note(
        "-",
        "two instances on one PostgreSQL schema; A serves Chromium over HTTPS",
    );

    // The partner signs in: password, then the code from the app (oathtool here).
    browser.sign_in("marie", &marie.password).await;
    browser.wait_for("/second-factor").await;
    clock.advance(30);
    let key = marie.totp_secret.clone().unwrap();
    browser.fill("code", &oathtool_at(&key, clock.unix())).await;
    browser.click("main form button").await;
    browser.wait_for("/seekers").await;
    let (kinds, _) = bindings(&a).await;
    assert_eq!(
        kinds,
        [BindingKind::Dbsc],
        "Chromium's own DBSC bound the session"
    );
    for _ in 0..50 {
        browser.goto("/seekers").await;
        if bindings(&a).await.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bindings(&a).await.1 > 0, "Chromium signs its refreshes");
    timeline.note(
        "A",
        "marie signs in (password + TOTP) in Chromium; DBSC binds the session; refreshes are signed",
    );

    // The infostealer copies the saved password and every cookie out of the profile.
    let stolen = browser.named_cookies().await;
    let mut thief = Client::with_stolen(&stolen);
    timeline.note(
        "-",
        format!(
            "infostealer copies the password and {} cookies",
            stolen.len()
        ),
    );

    // (3) While the copied bound cookie still lives, the thief's script tries the mass export.
    let page = thief.call(&app_b, "GET", "/api/sessions", None).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the copy works until the bound cookie expires"
    );
    let mut exported = 0;
    let mut refusal = None;
    for _ in 0..3 {
        let answer = thief
            .call(&app_b, "POST", "/api/export", Some(json!({})))
            .await;
        if answer.status == StatusCode::OK {
            exported += 100;
        } else {
            refusal = Some(answer);
            break;
        }
    }
    let refusal = refusal.expect("the organisation's daily cap stops the export");
    assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.body["error"], "export_cap_reached");
    assert!(refusal.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(exported, 200);
    let alerts = a.db.audit_trail(100).await.unwrap();
    let alert = alerts
        .iter()
        .find(|event| event.kind == "export_cap_alert")
        .expect("an alert at 80 % of the cap");
    assert_eq!(alert.org.as_deref(), Some("formation-nord"));
    assert!(alerts
        .iter()
        .any(|event| event.kind == "export_refused_cap"));
    timeline.note(
        "B",
        format!(
            "thief's mass export from {THIEF}: {exported} records of 400, then 429 export_cap_reached; \
             alert: {}",
            alert.detail
        ),
    );

    // (1) The bound cookie expires: the copied cookies stop working, and leave a record.
    clock.advance(BOUND_COOKIE_LIFE.as_secs() + 1);
    let refused = thief.call(&app_b, "GET", "/api/sessions", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "refresh_required");
    let challenge = thief
        .call(&app_b, "POST", "/verrou/dbsc/refresh", None)
        .await;
    assert_eq!(
        challenge.status,
        StatusCode::FORBIDDEN,
        "a challenge it cannot sign"
    );
    assert!(challenge.headers.contains_key("secure-session-challenge"));
    let trail = b.verrou.audit_trail(None, 1_000).await.unwrap();
    let record = trail
        .iter()
        .find(|event| matches!(event.kind, AuditKind::BoundCookieRefused { .. }))
        .expect("the refused copy is audited");
    assert_eq!(record.user.as_str(), "marie");
    assert_eq!(
        record.client,
        Some(THIEF.parse::<SocketAddr>().unwrap().ip())
    );
    timeline.note(
        "B",
        format!(
            "bound cookie expired: the copied cookies get 401 refresh_required, audited as {:?}",
            record.kind
        ),
    );
    // The partner's browser carries on: it signs a refresh with its device key.
    let refreshed = bindings(&a).await.1;
    assert!(
        shows(
            &browser,
            "/seekers",
            "Job-seekers followed by Formation Nord"
        )
        .await
    );
    assert!(bindings(&a).await.1 > refreshed, "a new signed refresh");
    timeline.note(
        "A",
        "marie's Chromium keeps working: DBSC refreshes with the device key",
    );

    // (2) The thief signs in with the stolen password: stopped at the second factor, and its
    // guesses, spread over both instances, are throttled together.
    let mut guesser = Client::new(THIEF);
    let credentials = json!({ "login": "marie", "password": marie.password });
    let signed = guesser
        .call(&app_b, "POST", "/api/sign-in", Some(credentials))
        .await;
    assert_eq!(signed.body, json!({ "next": "second_factor" }));
    let export = guesser
        .call(&app_b, "POST", "/api/export", Some(json!({})))
        .await;
    assert_eq!(export.status, StatusCode::FORBIDDEN);
    assert_eq!(export.body["error"], "second_factor_required");
    // Guesses alternate between the instances; the thief waits out each Retry-After.
    let mut statuses = Vec::new();
    let mut waits = Vec::new();
    let mut guesses = 0u32;
    while guesses < 10 {
        let (name, app) = if statuses.len() % 2 == 0 {
            ("A", &app_a)
        } else {
            ("B", &app_b)
        };
        let guess = json!({ "code": format!("{:06}", 123_456 + guesses) });
        let answer = guesser
            .call(app, "POST", "/api/second-factor", Some(guess))
            .await;
        statuses.push(format!("{name}:{}", answer.status.as_u16()));
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = answer.headers[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            waits.push(wait);
            clock.advance(wait);
        } else {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
            guesses += 1;
        }
    }
    assert!(statuses.iter().any(|s| s.starts_with("A:401")));
    assert!(statuses.iter().any(|s| s.starts_with("B:401")));
    assert!(statuses.iter().any(|s| s.ends_with(":429")));
    // Ten wrong codes over both instances lock the account: even the right code is refused.
    let trail = a.verrou.audit_trail(None, 1_000).await.unwrap();
    assert!(trail.iter().any(|event| event.user.as_str() == "marie"
        && matches!(event.kind, AuditKind::LockEngaged { .. })));
    clock.advance(30);
    let right = json!({ "code": oathtool_at(&key, clock.unix()) });
    let locked = guesser
        .call(&app_b, "POST", "/api/second-factor", Some(right))
        .await;
    assert_eq!(
        locked.status,
        StatusCode::UNAUTHORIZED,
        "locked: the right code is refused too"
    );
    timeline.note(
        "A+B",
        format!(
            "thief signs in with the stolen password: second factor required (export 403); \
             code guesses {}; 429 waits {waits:?} s, then the account locks (lock_engaged); \
             even the right code is refused",
            statuses.join(" ")
        ),
    );

    // The operator signs in on A, reads the alerts, and ends Formation Nord's sessions.
    let operateur = account("operateur");
    let mut operator = Client::new("192.0.2.10:50000");
    assert_eq!(
        operator.sign_in(&app_a, &operateur, &clock).await,
        StatusCode::OK
    );
    let alerts = operator
        .call(
            &app_a,
            "GET",
            "/api/operator/audit?kind=export_cap_alert",
            None,
        )
        .await;
    assert_eq!(alerts.body.as_array().map(Vec::len), Some(1));
    let replays = operator
        .call(
            &app_a,
            "GET",
            "/api/operator/audit?kind=bound_cookie_refused",
            None,
        )
        .await;
    assert!(!replays.body.as_array().unwrap().is_empty());
    // Just before: the browser (its bound cookie renewed by DBSC after the time the guessing
    // took) is signed in, and its current cookies work on B too (one shared store).
    assert!(
        shows(
            &browser,
            "/seekers",
            "Job-seekers followed by Formation Nord"
        )
        .await
    );
    let current = browser.named_cookies().await;
    let mut copy = Client::with_stolen(&current);
    assert_eq!(
        copy.call(&app_b, "GET", "/api/sessions", None).await.status,
        StatusCode::OK
    );
    let revoked = operator
        .call(
            &app_a,
            "POST",
            "/api/operator/revoke-org",
            Some(json!({ "org": "formation-nord" })),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let ended = revoked.body["ended"].as_u64().unwrap();
    assert!(
        ended >= 2,
        "marie's session and the thief's password-only one: {ended}"
    );
    let after = copy.call(&app_b, "GET", "/api/sessions", None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.body["error"], "no_session");
    let thief_after = guesser
        .call(
            &app_b,
            "POST",
            "/api/second-factor",
            Some(json!({ "code": "000000" })),
        )
        .await;
    assert_eq!(thief_after.status, StatusCode::UNAUTHORIZED);
    browser.goto("/seekers").await;
    browser.wait_for("/sign-in").await;
    let lifted = operator
        .call(
            &app_a,
            "POST",
            "/api/operator/lift-lock",
            Some(json!({ "login": "marie" })),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::OK);
    timeline.note(
        "A -> B",
        format!(
            "operator (step-up) ends formation-nord's {ended} sessions on A; B refuses them at the \
             next request; Chromium lands on /sign-in; marie's lock lifted for her"
        ),
    );
    browser.client.close().await.unwrap();
    driver.kill().await.ok();
    server.abort();

    // The keys are rotated on the running pair while partners keep signing in on both.
    // Partners sign in on both instances throughout; each round is counted in the rotation
    // phase it started in (0 before step 1, 1 after it, 2 after step 2, 3 after step 3), and
    // each step waits for a whole round in the phase before it, so logins do run in between.
    let phase = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(Mutex::new([0usize; 4]));
    let logins = {
        let (app_a, app_b, clock) = (app_a.clone(), app_b.clone(), clock.clone());
        let (ines, lea) = (account("ines"), account("lea"));
        let (phase, rounds) = (phase.clone(), rounds.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            loop {
                let now = usize::try_from(phase.load(Ordering::SeqCst)).unwrap();
                if now == 3 && rounds.lock().unwrap()[3] >= 2 {
                    break (ok, failed);
                }
                clock.advance(30);
                for (app, who, name) in [(&app_a, &ines, "A"), (&app_b, &lea, "B")] {
                    let status = Client::new("198.51.100.7:40000")
                        .sign_in(app, who, &clock)
                        .await;
                    if status == StatusCode::OK {
                        ok += 1;
                    } else {
                        failed.push(format!("{} on {name} in phase {now}: {status}", who.login));
                    }
                }
                rounds.lock().unwrap()[now] += 1;
            }
        })
    };
    // Waits until a whole round of logins ran in `phase`.
    let round_in = |at: usize| {
        let rounds = rounds.clone();
        async move {
            for _ in 0..600 {
                if rounds.lock().unwrap()[at] >= 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no round of logins in phase {at}");
        }
    };
    round_in(0).await;
    let key_file = dir.path().join("verrou-keys");
    let old = std::fs::read_to_string(&key_file).unwrap();
    let new = KeyRing::generate_entry(&KeyId::new("demo-2").unwrap()).unwrap();
    std::fs::write(&key_file, format!("{}\n{}", &*new, old.trim())).unwrap();
    for portal in [&a, &b] {
        assert_eq!(portal.reload_keys().await.unwrap().as_str(), "demo-2");
    }
    timeline.note(
        "A, B",
        "step 1: new key first in the key file; A and B reload it (the SIGHUP handler)",
    );
    phase.store(1, Ordering::SeqCst);
    round_in(1).await;
    // Paul enrols now: his secret is sealed with the new key, and B opens it.
    let paul = account("paul");
    let mut app = Client::new("198.51.100.8:40000");
    let credentials = json!({ "login": "paul", "password": paul.password });
    app.call(&app_a, "POST", "/api/sign-in", Some(credentials.clone()))
        .await;
    let offer = app.call(&app_a, "POST", "/api/enrolment", None).await;
    let paul_key = offer.body["secret"].as_str().unwrap().to_owned();
    let code = json!({ "code": oathtool_at(&paul_key, clock.unix()) });
    let confirmed = app
        .call(&app_a, "POST", "/api/enrolment/confirm", Some(code))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK);
    let report = a.verrou.store().rotate_keys().await.unwrap();
    assert_eq!(
        (report.stale, report.unreadable.len()),
        (0, 0),
        "{report:?}"
    );
    timeline.note(
        "A",
        format!(
            "step 2: rotate-keys re-seals {} secrets (paul enrolled meanwhile)",
            report.resealed
        ),
    );
    phase.store(2, Ordering::SeqCst);
    round_in(2).await;
    std::fs::write(&key_file, &*new).unwrap();
    for portal in [&a, &b] {
        assert_eq!(portal.reload_keys().await.unwrap().as_str(), "demo-2");
    }
    phase.store(3, Ordering::SeqCst);
    let sealed = b.verrou.store().sealed_secrets().await.unwrap();
    assert_eq!(
        sealed.by_key.keys().map(KeyId::as_str).collect::<Vec<_>>(),
        ["demo-2"]
    );
    timeline.note(
        "A, B",
        "step 3: old key removed from the file; A and B reload it",
    );
    let (ok, failed) = logins.await.unwrap();
    assert!(
        failed.is_empty(),
        "logins failed during the rotation: {failed:?}"
    );
    let rounds = *rounds.lock().unwrap();
    assert!(rounds.iter().all(|&n| n >= 1), "{rounds:?}");
    clock.advance(30);
    let mut paul_later = Client::new("198.51.100.8:40000");
    let paul = DemoAccount {
        totp_secret: Some(paul_key),
        ..paul
    };
    assert_eq!(
        paul_later.sign_in(&app_b, &paul, &clock).await,
        StatusCode::OK
    );
    timeline.note(
        "A+B",
        format!(
            "{ok} sign-ins (password + TOTP, on A and B in turn) through the rotation, rounds \
             before step 1, after 1, after 2, after 3: {rounds:?}; none failed; paul signs in on B"
        ),
    );
    timeline.print();
}
