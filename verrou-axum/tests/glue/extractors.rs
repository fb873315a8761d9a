//! The session extractors: what each lets through, and what every other request gets.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use verrou::session::cookie::{BOUND_COOKIE, SESSION_COOKIE};
use verrou::testing::InsecureDevice;

use crate::support::{json, send, text, Jar, World};

fn location(response: &axum::http::Response<Body>) -> &str {
    response.headers()[header::LOCATION].to_str().unwrap()
}

fn clears_both_cookies(response: &axum::http::Response<Body>) -> bool {
    let cleared: Vec<_> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    [SESSION_COOKIE, BOUND_COOKIE].iter().all(|name| {
        cleared
            .iter()
            .any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0"))
    })
}

#[tokio::test]
async fn no_session_sends_a_page_load_to_sign_in_and_a_script_gets_401() {
    let w = World::new().await;
    let nobody = Jar::default();
    let response = send(
        w.app(false),
        nobody
            .navigate("GET", "/page?x=1&y=2")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sign-in?next=%2Fpage%3Fx%3D1%26y%3D2");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert!(clears_both_cookies(&response));

    let response = w.fetch(&nobody, "/page").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "no_session");

    // A forged, a malformed and a logged-out cookie read alike.
    let forged = Jar {
        session: Some("A".repeat(43)),
        bound: None,
    };
    let malformed = Jar {
        session: Some("not a token".into()),
        bound: None,
    };
    let out = w.signed_in().await;
    let _ = w
        .verrou
        .logout(
            out.session.as_deref().unwrap(),
            &verrou::ClientContext::unknown(),
        )
        .await
        .unwrap();
    for jar in [forged, malformed, out] {
        let response = w.fetch(&jar, "/any").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{jar:?}");
        // A POST page load is not sent back with `next` (a redirect cannot carry its body).
        let response = send(
            w.app(false),
            jar.navigate("POST", "/page").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(location(&response), "/sign-in");
    }
}

#[tokio::test]
async fn password_only_reaches_any_session_and_is_sent_to_the_second_factor_elsewhere() {
    let w = World::new().await;
    let jar = w.signed_in().await;
    let response = w.fetch(&jar, "/any").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "PasswordOnly");

    let response = w.visit(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/second-factor?next=%2Fpage");
    let response = w.fetch(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(response).await["error"], "second_factor_required");

    let response = w.fetch(&jar, "/live").await;
    assert_eq!(text(response).await, "ready");
}

#[tokio::test]
async fn a_bound_session_passes_and_step_up_goes_stale_after_five_minutes() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let mut jar = w.bound(&device).await;
    for path in ["/page", "/any", "/export", "/live"] {
        let response = w.visit(&jar, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(text(w.fetch(&jar, "/page").await).await, "page for marie");

    // Four minutes on, the device renews the bound cookie; a minute later the step-up
    // window has passed but the cookie is current.
    w.clock.advance(Duration::from_secs(4 * 60));
    let fresh = w.fetch(&jar, "/export").await;
    assert_eq!(fresh.status(), StatusCode::OK);
    w.renew(&mut jar, &device).await;
    w.clock.advance(Duration::from_secs(61));
    let stale = w.visit(&jar, "/export").await;
    assert_eq!(stale.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&stale), "/second-factor?next=%2Fexport");
    let stale = w.fetch(&jar, "/export").await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(stale).await["error"], "step_up_required");
    let page = w.fetch(&jar, "/page").await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookies_split_over_several_headers_are_read_together() {
    // HTTP/2 sends each cookie in a header of its own.
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    let request = Jar::default()
        .request("GET", "/page")
        .header(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", jar.session.clone().unwrap()),
        )
        .header(header::COOKIE, "theme=dark")
        .header(
            header::COOKIE,
            format!("{BOUND_COOKIE}={}", jar.bound.clone().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    let response = send(w.app(false), request).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_bound_cookie_gets_the_renewal_page_on_a_page_load_and_401_for_a_script() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    w.clock.advance(Duration::from_secs(5 * 60 + 1));

    let response = w.visit(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = text(response).await;
    assert!(html.contains(&format!(
        "<script src=\"{}\" data-verrou-retry></script>",
        w.guard.script_path()
    )));
    assert!(html.contains("id=\"verrou-retry-failed\" hidden"));
    assert!(
        !html.contains("verrou-retry-form") && !html.contains("verrou-retry-resubmit"),
        "a GET reloads"
    );
    assert!(!html.contains("<script>"), "no inline script");

    let response = w.fetch(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "refresh_required");

    // The second-factor page still takes the session: passing it again binds it anew.
    let response = w.fetch(&jar, "/live").await;
    assert_eq!(text(response).await, "refresh_required");
}

#[tokio::test]
async fn a_form_posted_with_an_expired_bound_cookie_is_kept_for_the_retry() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    w.clock.advance(Duration::from_secs(5 * 60 + 1));
    let body = "csrf=t0k%2Fen&note=%3Cscript%3Ealert(1)%3C%2Fscript%3E+%22quoted%22+%26+caf%C3%A9%0D%0Aline+2&note=second";
    let post = |jar: &Jar| {
        jar.navigate("POST", "/form?case=1")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap()
    };
    let html = text(send(w.app(true), post(&jar)).await).await;
    assert!(
        html.contains("<form id=\"verrou-retry-form\" method=\"post\" action=\"/form?case=1\""),
        "{html}"
    );
    assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"t0k/en\">"));
    assert!(html.contains(
        "<input type=\"hidden\" name=\"note\" value=\"&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; café&#13;&#10;line 2\">"
    ));
    assert!(html.contains("<input type=\"hidden\" name=\"note\" value=\"second\">"));
    assert!(!html.contains("<script>alert"));

    // Without keep_forms the page renews the cookie and asks the user to send it again.
    let html = text(send(w.app(false), post(&jar)).await).await;
    assert!(html.contains("id=\"verrou-retry-resubmit\" hidden"));
    assert!(!html.contains("verrou-retry-form"));

    // A form whose bytes are not UTF-8 cannot be re-submitted unchanged: not replayed.
    let odd = "name=%FF";
    let request = jar
        .navigate("POST", "/form")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, odd.len())
        .body(Body::from(odd))
        .unwrap();
    let html = text(send(w.app(true), request).await).await;
    assert!(html.contains("verrou-retry-resubmit") && !html.contains("verrou-retry-form"));

    // keep_forms hands the handler the same body when the cookies are in order.
    let fresh = w.bound(&device).await;
    let response = send(w.app(true), post(&fresh)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fields = json(response).await;
    assert_eq!(fields[0], serde_json::json!(["csrf", "t0k/en"]));
    assert_eq!(
        fields[1][1],
        "<script>alert(1)</script> \"quoted\" & café\r\nline 2"
    );
    assert_eq!(fields[2], serde_json::json!(["note", "second"]));
}

#[tokio::test]
async fn a_skipped_dbsc_refresh_sends_the_user_to_the_second_factor_and_proves_nothing() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    w.clock.advance(Duration::from_secs(5 * 60 + 1));
    let skipped = "quota_exceeded;session_identifier=\"x\"";
    let response = send(
        w.app(false),
        jar.navigate("GET", "/page")
            .header("secure-session-skipped", skipped)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/second-factor?next=%2Fpage");
    let response = send(
        w.app(false),
        jar.request("GET", "/page")
            .header("secure-session-skipped", skipped)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "refresh_skipped");
}

#[tokio::test]
async fn a_session_that_never_bound_is_sent_to_pass_the_second_factor_again() {
    let w = World::new().await;
    let mut jar = w.signed_in().await;
    let _ = w.elevate(&mut jar).await;
    // Within the grace the session works unbound; past it, it must pass the factor again.
    let response = w.fetch(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::OK);
    w.clock.advance(Duration::from_secs(121));
    let response = w.visit(&jar, "/page").await;
    assert_eq!(location(&response), "/second-factor?next=%2Fpage");
    let response = w.fetch(&jar, "/page").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(response).await["error"], "binding_missing");
    let response = w.fetch(&jar, "/live").await;
    assert_eq!(text(response).await, "binding_missing");
}

#[tokio::test]
async fn without_the_peer_address_the_request_fails_closed_with_a_bare_500() {
    let w = World::new().await;
    let jar = w.signed_in().await;
    let request = axum::http::Request::builder()
        .uri("/any")
        .header(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", jar.session.unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    let response = send(w.app(false), request).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(response).await, "internal error");
}

#[tokio::test]
async fn the_page_after_the_second_factor_offers_dbsc_and_runs_the_fallback_after_a_head_start() {
    let w = World::new().await;
    let mut jar = w.signed_in().await;
    let response = w.elevate(&mut jar).await;
    assert_eq!(response.status(), StatusCode::OK);
    let offer = response.headers()["secure-session-registration"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        offer.starts_with("(ES256);path=\"/verrou/dbsc/register\";challenge=\""),
        "{offer}"
    );
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with(&format!("{SESSION_COOKIE}=")) && cookie.contains("HttpOnly"));
    let challenge = crate::support::offered_challenge(&response);
    let html = text(response).await;
    assert!(html.contains(&format!(
        "<script src=\"{}\" data-verrou-register=\"{challenge}\" data-verrou-registration=\"/verrou/webcrypto/register\" data-verrou-next=\"/page\" data-verrou-wait=\"1500\"></script>",
        w.guard.script_path()
    )), "{html}");
    assert!(html.contains("id=\"verrou-binding-failed\" hidden"));
}
