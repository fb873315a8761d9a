//! The WebCrypto fallback in a real browser: headless Chromium loads a page from a minimal
//! portal, runs verrou's shipped script (`session::webcrypto::SCRIPT`), which creates a
//! non-extractable P-256 key, registers it, and renews the short bound cookie by signing
//! server challenges when the server says it expired. Then the infostealer: the cookies the
//! browser sent, replayed without its key, are refused.
//!
//! Needs Chromium: `chromium` on the PATH or `VERROU_TEST_CHROMIUM` (scripts/test installs
//! it). Without it the test fails, naming what is missing; it never passes without a browser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use verrou::audit::AuditKind;
use verrou::session::cookie::{set_cookie, SESSION_COOKIE};
use verrou::session::dbsc::RESPONSE_HEADER;
use verrou::session::{webcrypto, BindingKind, Requirement};
use verrou::store::MemoryStore;
use verrou::{
    BindingOutcome, ClientContext, ElevationOutcome, RefreshOutcome, SessionCookies, SessionStatus,
    TotpOutcome,
};

use crate::support::http::{refresh_answer, registration_answer, Request, Response};
use crate::support::{config, enrolled, Enrolled};

struct Portal {
    e: Enrolled<MemoryStore>,
    reports: mpsc::Sender<String>,
    /// The last `Cookie` header a page request carried: what an infostealer copies.
    last_cookies: Mutex<String>,
}

impl Portal {
    async fn handle(&self, request: Request) -> Response {
        let ctx = ClientContext::unknown();
        let verrou = &self.e.verrou;
        let cookie_header = request.header("Cookie").unwrap_or_default().to_owned();
        let cookies = SessionCookies::from_header(&cookie_header);
        let paths = verrou.config().session_policy().dbsc_paths().clone();
        match (request.method.as_str(), request.path.as_str()) {
            // Sign-in and second factor in one step (the forms are not under test here).
            ("GET", "/") => {
                let new = verrou
                    .create_session(&self.e.user, None, &ctx)
                    .await
                    .unwrap();
                self.e.advance_steps(1);
                let code = self.e.code(0);
                let TotpOutcome::Accepted(accepted) =
                    verrou.verify_totp(&self.e.user, &code, &ctx).await.unwrap()
                else {
                    panic!("code refused");
                };
                let ElevationOutcome::Elevated(elevated) = verrou
                    .record_second_factor(new.token.expose_secret(), accepted.proof, &ctx)
                    .await
                    .unwrap()
                else {
                    panic!("elevation refused");
                };
                let challenge = elevated.binding_offer.unwrap();
                let page = PAGE
                    .replace("{SCRIPT}", webcrypto::SCRIPT)
                    .replace("{CHALLENGE}", challenge.as_str())
                    .replace("{SESSION}", &elevated.session.to_string())
                    .replace("{REGISTRATION}", paths.registration());
                Response::status(200)
                    .with("Content-Type", "text/html; charset=utf-8".into())
                    .with(
                        "Set-Cookie",
                        set_cookie(SESSION_COOKIE, &elevated.token, elevated.max_age),
                    )
                    .body(page)
            }
            ("POST", path) if path == paths.registration() => {
                let proof = request.header(RESPONSE_HEADER).unwrap_or_default();
                let session = cookies.map(|c| c.session()).unwrap_or_default();
                let outcome = verrou
                    .register_binding(session, proof, BindingKind::WebCrypto, &ctx)
                    .await
                    .unwrap();
                assert!(matches!(outcome, BindingOutcome::Bound(_)), "{outcome:?}");
                registration_answer(verrou, outcome)
            }
            ("POST", path) if path == paths.refresh() => {
                let session = cookies.map(|c| c.session()).unwrap_or_default();
                let proof = request.header(RESPONSE_HEADER);
                let outcome = verrou.refresh_binding(session, proof, &ctx).await.unwrap();
                refresh_answer(verrou, outcome)
            }
            ("GET", "/data") => {
                *self.last_cookies.lock().unwrap() = cookie_header.clone();
                let Some(cookies) = cookies else {
                    return Response::status(401);
                };
                match verrou
                    .authenticate(&cookies, Requirement::SecondFactor, &ctx)
                    .await
                    .unwrap()
                {
                    SessionStatus::Active(_) => Response::status(200),
                    SessionStatus::RefreshRequired { .. } => Response::status(401),
                    _ => Response::status(403),
                }
            }
            // The server's clock moves past the bound cookie's life (the browser's does not:
            // the server decides).
            ("POST", "/advance") => {
                self.e.clock.advance(Duration::from_secs(5 * 60 + 1));
                Response::status(204)
            }
            ("POST", "/report") => Response::status(204),
            _ => Response::status(404),
        }
    }
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>portal</title></head><body>
<script>{SCRIPT}</script>
<script>
(async () => {
  const result = {};
  try {
    const instructions = await verrouBinding.register("{CHALLENGE}", "{REGISTRATION}");
    result.registered = instructions.session_identifier === "{SESSION}";
    result.first = (await fetch("/data")).status;
    await fetch("/advance", { method: "POST" });
    result.expired = (await fetch("/data")).status;
    result.renewed = (await verrouBinding.fetch("/data")).status;
    await fetch("/advance", { method: "POST" });
    result.renewedAgain = (await verrouBinding.fetch("/data")).status;
    const keyPair = await new Promise((resolve, reject) => {
      const open = indexedDB.open("verrou-binding", 1);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const request = open.result.transaction("keys").objectStore("keys").get("device");
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      };
    });
    result.extractable = keyPair.privateKey.extractable;
    try {
      await crypto.subtle.exportKey("pkcs8", keyPair.privateKey);
      result.exported = true;
    } catch (e) {
      result.exported = false;
    }
  } catch (e) {
    result.error = String(e);
  }
  await fetch("/report", { method: "POST", body: JSON.stringify(result) });
})();
</script></body></html>"#;

async fn serve_one(stream: TcpStream, portal: Arc<Portal>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut words = line.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    let body = String::from_utf8(body).unwrap();
    if path == "/report" {
        portal.reports.send(body.clone()).await.unwrap();
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    let response = portal.handle(request).await;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        response.status,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(response.body.as_bytes()).await.unwrap();
    stream.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_binds_a_session_with_the_webcrypto_fallback() {
    let chromium = std::env::var("VERROU_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let e = enrolled(MemoryStore::new(), config()).await;
    let (reports, mut received) = mpsc::channel(4);
    let portal = Arc::new(Portal {
        e,
        reports,
        last_cookies: Mutex::new(String::new()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = {
        let portal = portal.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_one(stream, portal.clone()));
            }
        })
    };
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::process::Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
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
    let report = tokio::time::timeout(Duration::from_secs(90), received.recv())
        .await
        .expect("the page never reported")
        .unwrap();
    browser.kill().await.ok();
    server.abort();

    let result: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        result,
        serde_json::json!({
            "registered": true,
            "first": 200,
            "expired": 401,
            "renewed": 200,
            "renewedAgain": 200,
            "extractable": false,
            "exported": false,
        }),
        "the page reported {report}"
    );
    let e = &portal.e;
    let trail = e.verrou.audit_trail(Some(&e.user), 100).await.unwrap();
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
    assert_eq!(refreshes, 2);

    // The infostealer: the browser's cookies, as sent with its last request, replayed from
    // here without its key. Good until the bound cookie expires, then refused for good.
    let stolen = portal.last_cookies.lock().unwrap().clone();
    let cookies = SessionCookies::from_header(&stolen).unwrap();
    let ctx = ClientContext::unknown();
    let before = e
        .verrou
        .authenticate(&cookies, Requirement::SecondFactor, &ctx)
        .await
        .unwrap();
    assert!(matches!(before, SessionStatus::Active(_)), "{before:?}");
    e.clock.advance(Duration::from_secs(5 * 60 + 1));
    let after = e
        .verrou
        .authenticate(&cookies, Requirement::SecondFactor, &ctx)
        .await
        .unwrap();
    assert!(
        matches!(after, SessionStatus::RefreshRequired { .. }),
        "{after:?}"
    );
    let refresh = e
        .verrou
        .refresh_binding(cookies.session(), None, &ctx)
        .await
        .unwrap();
    assert!(matches!(refresh, RefreshOutcome::Challenge { .. }));
}
