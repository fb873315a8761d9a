//! The WebCrypto fallback's page-load story in headless Chromium: the page after the second
//! factor binds the browser; a form left open past the bound cookie's life is submitted; the
//! glue answers with its renewal page, which renews the cookie with the device key and submits
//! the form again: the handler receives every field intact. Then a plain page load after
//! expiry: renewed and reloaded. And the DBSC-first rule: when the browser's DBSC bound the
//! session during the fallback's head start, the fallback stands down without an error.
//!
//! Needs Chromium: `chromium` on the PATH or `VERROU_TEST_CHROMIUM` (scripts/test installs
//! it). Without it the test fails, naming what is missing; it never passes without a browser.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Form, Router};
use tokio::sync::mpsc;
use verrou::session::BindingKind;
use verrou::testing::InsecureDevice;
use verrou::{AuditKind, BindingOutcome, ClientContext, TotpOutcome};
use verrou_axum::{keep_forms, Guard, Outcome, Session, Settings};

use crate::support::World;

#[derive(Clone)]
struct Lab {
    world: Arc<World>,
    reports: mpsc::Sender<String>,
    /// Plays a browser whose DBSC registers as soon as it sees the offer.
    dbsc_first: bool,
    /// Where the page after the second factor goes on to.
    next: &'static str,
}

impl axum::extract::FromRef<Lab> for Guard {
    fn from_ref(lab: &Lab) -> Guard {
        lab.world.guard.clone()
    }
}

/// Sign-in and second factor in one step (the forms are the minimal portal's business).
async fn start(State(lab): State<Lab>) -> Response {
    let w = &lab.world;
    let ctx = ClientContext::unknown();
    let new = w.verrou.create_session(&w.user, None, &ctx).await.unwrap();
    let code = w.next_code();
    let TotpOutcome::Accepted(accepted) = w.verrou.verify_totp(&w.user, &code, &ctx).await.unwrap()
    else {
        panic!("code refused");
    };
    let elevated = w
        .verrou
        .record_second_factor(new.token.expose_secret(), accepted.proof, &ctx)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    if !lab.dbsc_first {
        return w.guard.continue_after_second_factor(&elevated, lab.next);
    }
    let mut response = w.guard.continue_after_second_factor(&elevated, lab.next);
    // What a DBSC browser does with the offer before the page's script runs: registers its
    // own key and stores the bound cookie it is given.
    let challenge = elevated.binding_offer.as_ref().unwrap();
    let device = InsecureDevice::generate().unwrap();
    let proof = device.registration_proof(challenge.as_str());
    let token = elevated.token.expose_secret();
    let outcome = w
        .verrou
        .register_binding(token, &proof, BindingKind::Dbsc, &ctx)
        .await
        .unwrap();
    let BindingOutcome::Bound(bound) = outcome else {
        panic!("registration refused: {outcome:?}");
    };
    let cookie = HeaderValue::from_str(&bound.set_cookie_header()).unwrap();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// Where the page after the second factor goes on to: reports whether the fallback kept a key.
async fn next_page(_session: Session) -> Html<&'static str> {
    Html(
        r#"<!doctype html><html><head><meta charset="utf-8"></head><body><script>
(async () => {
  const kept = await new Promise((resolve) => {
    const open = indexedDB.open("verrou-binding", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onerror = () => resolve("error");
    open.onsuccess = () => {
      const request = open.result.transaction("keys").objectStore("keys").get("device");
      request.onsuccess = () => resolve(request.result !== undefined);
      request.onerror = () => resolve("error");
    };
  });
  await fetch("/report", { method: "POST", body: JSON.stringify({ next: true, keyKept: kept }) });
})();
</script></body></html>"#,
    )
}

/// A page left open: its bound cookie is made to look 250 s old (of 300) in the script's own
/// record, then the script's renewal runs, as its timer would; then again when the tab
/// becomes visible. Reports what the record says after each.
async fn open_page(State(lab): State<Lab>, _session: Session) -> Html<String> {
    Html(format!(
        r#"<!doctype html><html><head><meta charset="utf-8">{}</head><body><script>
function renewed(value) {{
  return new Promise((resolve, reject) => {{
    const open = indexedDB.open("verrou-binding", 1);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {{
      const tx = open.result.transaction("keys", value ? "readwrite" : "readonly");
      const store = tx.objectStore("keys");
      const request = value ? store.put(value, "renewed") : store.get("renewed");
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    }};
  }});
}}
window.addEventListener("load", async () => {{
  const result = {{}};
  const before = await renewed();
  result.maxAge = before && before.maxAge;
  await renewed({{ at: Date.now() - 250000, maxAge: 300 }});
  await verrouBinding.keepFresh();
  result.renewedByTimer = Date.now() - (await renewed()).at < 60000;
  await renewed({{ at: Date.now() - 250000, maxAge: 300 }});
  document.dispatchEvent(new Event("visibilitychange"));
  for (let i = 0; i < 50 && Date.now() - (await renewed()).at > 60000; i++) {{
    await new Promise((resolve) => setTimeout(resolve, 100));
  }}
  result.renewedOnVisible = Date.now() - (await renewed()).at < 60000;
  await fetch("/report", {{ method: "POST", body: JSON.stringify(result) }});
}});
</script></body></html>"#,
        lab.world.guard.script_tag()
    ))
}

async fn report(State(lab): State<Lab>, body: String) -> axum::http::StatusCode {
    lab.reports.send(body).await.unwrap();
    axum::http::StatusCode::NO_CONTENT
}

/// A page with a form; once loaded, the server's clock passes the bound cookie's life and the
/// form is submitted.
async fn form_page(State(lab): State<Lab>, _session: Session) -> Html<String> {
    Html(format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>form</title>{}</head><body>
<form id="f" method="post" action="/submit?case=1">
<input type="hidden" name="csrf" value="t0k/en+=">
<textarea name="note">Ligne 1
Ligne &lt;2&gt; &amp; "guillemets" é ✓</textarea>
<input name="note" value="second">
<input name="empty" value="">
</form>
<script>
(async () => {{
  await fetch("/advance", {{ method: "POST" }});
  document.getElementById("f").submit();
}})();
</script></body></html>"#,
        lab.world.guard.script_tag()
    ))
}

async fn submit(
    State(lab): State<Lab>,
    _session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Html<&'static str> {
    let report = serde_json::json!({ "form": fields }).to_string();
    lab.reports.send(report).await.unwrap();
    Html(
        r#"<!doctype html><html><head><meta charset="utf-8"></head><body><script>
(async () => {
  await fetch("/advance", { method: "POST" });
  location.href = "/done";
})();
</script></body></html>"#,
    )
}

async fn done(State(lab): State<Lab>, _session: Session) -> &'static str {
    lab.reports
        .send(r#"{"done":true}"#.to_owned())
        .await
        .unwrap();
    "done"
}

async fn advance(State(lab): State<Lab>) -> impl IntoResponse {
    lab.world.clock.advance(Duration::from_secs(5 * 60 + 1));
    axum::http::StatusCode::NO_CONTENT
}

/// Serves `lab`'s portal, opens it in headless Chromium, and collects `count` reports.
async fn run_in_chromium(
    lab: Lab,
    mut received: mpsc::Receiver<String>,
    count: usize,
) -> Vec<serde_json::Value> {
    let chromium = std::env::var("VERROU_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let guard = lab.world.guard.clone();
    let app = Router::new()
        .route("/", get(start))
        .route("/form-page", get(form_page))
        .route("/submit", post(submit))
        .route("/done", get(done))
        .route("/next", get(next_page))
        .route("/open", get(open_page))
        .route("/report", post(report))
        .route("/advance", post(advance))
        .merge(guard.binding_router())
        .layer(middleware::from_fn(keep_forms))
        .with_state(lab);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::process::Command::new(&chromium)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // localhost is a secure context: WebCrypto and `__Host-` cookies work over http.
        .arg(format!("http://localhost:{port}/"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{chromium} could not run ({error}); install chromium (scripts/test does) or set VERROU_TEST_CHROMIUM")
        });
    let mut reports = Vec::new();
    for _ in 0..count {
        let report = tokio::time::timeout(Duration::from_secs(90), received.recv())
            .await
            .expect("the browser never reported")
            .unwrap();
        reports.push(serde_json::from_str::<serde_json::Value>(&report).unwrap());
    }
    browser.kill().await.ok();
    server.abort();
    reports
}

async fn lab(
    head_start: Duration,
    dbsc_first: bool,
    next: &'static str,
) -> (Lab, mpsc::Receiver<String>) {
    let settings = Settings::new("/sign-in", "/second-factor")
        .unwrap()
        .with_dbsc_head_start(head_start);
    let world = Arc::new(World::with(settings).await);
    let (reports, received) = mpsc::channel(8);
    let lab = Lab {
        world,
        reports,
        dbsc_first,
        next,
    };
    (lab, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_a_form_across_an_expired_bound_cookie() {
    // No DBSC in this Chromium (its features are off): no head start to wait for.
    let (lab, received) = lab(Duration::ZERO, false, "/form-page").await;
    let world = lab.world.clone();
    let reports = run_in_chromium(lab, received, 2).await;
    assert_eq!(
        reports[0],
        serde_json::json!({ "form": [
            ["csrf", "t0k/en+="],
            ["note", "Ligne 1\r\nLigne <2> & \"guillemets\" é ✓"],
            ["note", "second"],
            ["empty", ""],
        ]}),
        "the form arrived changed"
    );
    assert_eq!(reports[1], serde_json::json!({ "done": true }));
    let trail = world
        .verrou
        .audit_trail(Some(&world.user), 100)
        .await
        .unwrap();
    assert!(trail.iter().any(|event| matches!(
        event.kind,
        AuditKind::BindingRegistered {
            kind: BindingKind::WebCrypto,
            ..
        }
    )));
    let refreshes = trail
        .iter()
        .filter(|event| matches!(event.kind, AuditKind::BindingRefreshed { .. }))
        .count();
    assert_eq!(
        refreshes, 2,
        "one renewal for the form, one for the page load"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_stands_the_fallback_down_when_dbsc_bound_first() {
    let (lab, received) = lab(Duration::from_millis(300), true, "/next").await;
    let world = lab.world.clone();
    let reports = run_in_chromium(lab, received, 1).await;
    // The page went on to `next` (a refused registration would have stopped it with its
    // error shown) and kept no key of its own.
    assert_eq!(
        reports[0],
        serde_json::json!({ "next": true, "keyKept": false })
    );
    let trail = world
        .verrou
        .audit_trail(Some(&world.user), 100)
        .await
        .unwrap();
    let registered: Vec<_> = trail
        .iter()
        .filter_map(|event| match event.kind {
            AuditKind::BindingRegistered { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(registered, [BindingKind::Dbsc], "one binding, DBSC's");
    assert!(!trail
        .iter()
        .any(|event| matches!(event.kind, AuditKind::BindingProofFailed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renews_the_bound_cookie_while_a_page_is_open() {
    let (lab, received) = lab(Duration::ZERO, false, "/open").await;
    let world = lab.world.clone();
    let reports = run_in_chromium(lab, received, 1).await;
    assert_eq!(
        reports[0],
        serde_json::json!({ "maxAge": 300, "renewedByTimer": true, "renewedOnVisible": true })
    );
    // Two signed renewals, and the server's clock never moved: no request met an expired
    // cookie on the way.
    let trail = world
        .verrou
        .audit_trail(Some(&world.user), 100)
        .await
        .unwrap();
    let refreshes = trail
        .iter()
        .filter(|event| matches!(event.kind, AuditKind::BindingRefreshed { .. }))
        .count();
    assert_eq!(refreshes, 2);
}
