//! The JSON API: the flows, and an answer other than 500 for everything a client can send.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{text, Browser, Lab};

async fn body(response: axum::http::Response<Body>) -> Value {
    serde_json::from_str(&text(response).await).unwrap()
}

/// A browser signed in over the API with `login`'s password and code.
async fn api_signed_in(lab: &Lab, login: &str) -> (Browser, Value) {
    let mut browser = Browser::default();
    let password = lab.account(login).password.clone();
    let credentials = json!({ "login": login, "password": password }).to_string();
    let response = browser
        .send(lab, browser.api("POST", "/api/sign-in", Some(&credentials)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, json!({ "next": "second_factor" }));
    lab.clock.advance(Duration::from_secs(30));
    let code = json!({ "code": lab.code(login) }).to_string();
    let response = browser
        .send(lab, browser.api("POST", "/api/second-factor", Some(&code)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The app (or browser) binds the session with its key, as DBSC does.
    browser.bind(lab, &response).await;
    let elevated = body(response).await;
    (browser, elevated)
}

#[tokio::test]
async fn sign_in_second_factor_sessions_and_revocation() {
    let lab = Lab::new().await;
    let (mut api, elevated) = api_signed_in(&lab, "marie").await;
    assert!(elevated["binding"]["challenge"].as_str().unwrap().len() >= 43);
    assert_eq!(
        elevated["binding"]["registration"],
        "/verrou/webcrypto/register"
    );
    let mut other = lab.signed_in("marie").await;

    let listed = body(api.send(&lab, api.api("GET", "/api/sessions", None)).await).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let theirs = listed.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(theirs["binding"], "dbsc");
    let id = theirs["id"].as_str().unwrap().to_owned();
    let response = api
        .send(
            &lab,
            api.api("DELETE", &format!("/api/sessions/{id}"), None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        other.get(&lab, "/seekers").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = api
        .send(
            &lab,
            api.api("DELETE", &format!("/api/sessions/{id}"), None),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refusals_read_alike_and_throttling_says_when() {
    let lab = Lab::new().await;
    let mut browser = Browser::default();
    for (login, password) in [("nobody", "x"), ("marie", "wrong")] {
        let credentials = json!({ "login": login, "password": password }).to_string();
        let response = browser
            .send(
                &lab,
                browser.api("POST", "/api/sign-in", Some(&credentials)),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(response).await, json!({ "error": "sign_in_refused" }));
    }
    let password = lab.account("marie").password.clone();
    let credentials = json!({ "login": "marie", "password": password }).to_string();
    browser
        .send(
            &lab,
            browser.api("POST", "/api/sign-in", Some(&credentials)),
        )
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let wrong = json!({ "code": "000000" }).to_string();
        let response = browser
            .send(
                &lab,
                browser.api("POST", "/api/second-factor", Some(&wrong)),
            )
            .await;
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER).cloned();
        let answer = body(response).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some(), "Retry-After on 429");
            assert_eq!(answer["error"], "throttled");
        } else {
            assert_eq!(
                (status, answer),
                (StatusCode::UNAUTHORIZED, json!({ "error": "code_refused" }))
            );
        }
        statuses.push(status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn nothing_a_client_sends_gets_a_500() {
    let lab = Lab::new().await;
    let mut browser = Browser::default();
    let password = lab.account("marie").password.clone();
    let credentials = json!({ "login": "marie", "password": password }).to_string();
    browser
        .send(
            &lab,
            browser.api("POST", "/api/sign-in", Some(&credentials)),
        )
        .await;
    let huge = format!("{{\"code\":\"{}\"}}", "1".repeat(1 << 20));
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "a number",
            r#"{"code":123456}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        ("null", r#"{"code":null}"#.into(), StatusCode::BAD_REQUEST),
        (
            "an array",
            r#"{"code":["1","2"]}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        ("missing", r#"{}"#.into(), StatusCode::BAD_REQUEST),
        (
            "unknown field",
            r#"{"code":"123456","admin":true}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        ("not JSON", "code=123456".into(), StatusCode::BAD_REQUEST),
        (
            "a method that is not one",
            r#"{"code":"1","method":"sms"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "letters",
            r#"{"code":"12ab56"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        ("1 MB", huge, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (case, sent, expected) in cases {
        let response = browser
            .send(&lab, browser.api("POST", "/api/second-factor", Some(&sent)))
            .await;
        assert_eq!(response.status(), expected, "{case}");
        assert!(body(response).await["error"].is_string(), "{case}");
    }
    // Another media type, and no API header (a cross-site form could send neither).
    let form = Request::builder()
        .method("POST")
        .uri("/api/second-factor")
        .header("x-portal-api", "1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            browser.api("GET", "/", None).headers()[header::COOKIE].clone(),
        )
        .extension(axum::extract::ConnectInfo(
            crate::support::PEER
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ))
        .body(Body::from("code=123456"))
        .unwrap();
    assert_eq!(
        browser.send(&lab, form).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let mut unmarked = browser.api("POST", "/api/second-factor", Some(r#"{"code":"123456"}"#));
    unmarked.headers_mut().remove("x-portal-api");
    assert_eq!(
        browser.send(&lab, unmarked).await.status(),
        StatusCode::FORBIDDEN
    );
    // A request without a session: 401 JSON, not a redirect.
    let stranger = Browser::default();
    let response = lab_send(&lab, stranger.api("GET", "/api/sessions", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn lab_send(lab: &Lab, request: Request<Body>) -> axum::http::Response<Body> {
    Browser::default().send(lab, request).await
}

#[tokio::test]
async fn an_api_export_needs_step_up_and_is_throttled_like_the_page() {
    let lab = Lab::build(
        verrou_axum::TrustedProxies::none(),
        verrou_portal::app::ExportLimits {
            per_session: 1,
            ..Default::default()
        },
    )
    .await;
    let (mut api, _) = api_signed_in(&lab, "marie").await;
    let response = api
        .send(
            &lab,
            api.api("POST", "/api/export", Some(r#"{"q":"Lille"}"#)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let again = api
        .send(&lab, api.api("POST", "/api/export", Some("{}")))
        .await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(again.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(body(again).await, json!({ "error": "export_rate_limited" }));
    lab.clock.advance(Duration::from_secs(4 * 60));
    api.renew(&lab).await;
    lab.clock.advance(Duration::from_secs(2 * 60));
    let stale = api
        .send(&lab, api.api("POST", "/api/export", Some("{}")))
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(stale).await["error"], "step_up_required");
}

/// `POST` to the API as `browser`, with a JSON body.
async fn post_json(lab: &Lab, browser: &mut Browser, uri: &str, sent: &str) -> (StatusCode, Value) {
    let response = browser
        .send(lab, browser.api("POST", uri, Some(sent)))
        .await;
    let status = response.status();
    let answer = text(response).await;
    (status, serde_json::from_str(&answer).unwrap_or(Value::Null))
}

#[tokio::test]
async fn enrolment_recovery_codes_and_a_recovery_sign_in_over_the_api() {
    let lab = Lab::new().await;
    let mut app = Browser::default();
    let password = lab.account("paul").password.clone();
    let credentials = json!({ "login": "paul", "password": password }).to_string();
    let (status, answer) = post_json(&lab, &mut app, "/api/sign-in", &credentials).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({ "next": "enrolment" }))
    );

    let started = app
        .send(&lab, app.api("POST", "/api/enrolment", None))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let offer = body(started).await;
    let uri = offer["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(offer["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let secret = offer["secret"].as_str().unwrap().to_owned();
    assert!(uri.contains(&secret));

    // A wrong first code is refused; the key still stands, and the right code activates it.
    let wrong = json!({ "code": "000000" }).to_string();
    let (status, answer) = post_json(&lab, &mut app, "/api/enrolment/confirm", &wrong).await;
    assert_eq!(
        (status, answer),
        (StatusCode::UNAUTHORIZED, json!({ "error": "code_refused" }))
    );
    let (status, _) = post_json(&lab, &mut app, "/api/enrolment/confirm", r#"{"code":7}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let code = json!({ "code": crate::support::code_for(&secret, &lab.clock) }).to_string();
    let confirmed = app
        .send(&lab, app.api("POST", "/api/enrolment/confirm", Some(&code)))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    app.bind(&lab, &confirmed).await;
    assert!(body(confirmed).await["session"].is_string());

    // Enrolled: a second enrolment is refused; recovery codes come once, ten of them.
    let again = app
        .send(&lab, app.api("POST", "/api/enrolment", None))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let (status, codes) = post_json(&lab, &mut app, "/api/recovery-codes", "").await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<String> = codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);

    // A recovery code signs Paul in from a new client, once.
    for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
        lab.clock.advance(Duration::from_secs(60));
        let mut client = Browser::default();
        post_json(&lab, &mut client, "/api/sign-in", &credentials).await;
        let recovery = json!({ "code": codes[0], "method": "recovery" }).to_string();
        let (status, _) = post_json(&lab, &mut client, "/api/second-factor", &recovery).await;
        assert_eq!(status, expected);
    }
    // The recovery codes need a fresh second factor.
    lab.clock.advance(Duration::from_secs(4 * 60));
    app.renew(&lab).await;
    lab.clock.advance(Duration::from_secs(2 * 60));
    let (status, answer) = post_json(&lab, &mut app, "/api/recovery-codes", "").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
}

#[tokio::test]
async fn operator_actions_over_the_api() {
    let lab = Lab::new().await;
    // Léa locked herself out (hours of wrong codes: before the sessions below start).
    lab.fail_codes("lea", 10).await;
    let mut marie = lab.signed_in("marie").await;
    let (mut operator, _) = api_signed_in(&lab, "operateur").await;

    // Staff are refused every operator route.
    let (mut staff, _) = api_signed_in(&lab, "ines").await;
    let (status, _) = post_json(
        &lab,
        &mut staff,
        "/api/operator/revoke-org",
        r#"{"org":"formation-nord"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let audit = staff
        .send(&lab, staff.api("GET", "/api/operator/audit", None))
        .await;
    assert_eq!(audit.status(), StatusCode::FORBIDDEN);

    // Malformed bodies: 400, and nothing happens.
    for (uri, sent) in [
        ("/api/operator/revoke-org", r#"{"org":5}"#),
        ("/api/operator/revoke-org", r#"{"org":"a\u202eb"}"#),
        ("/api/operator/revoke-user", r#"{"login":null}"#),
        ("/api/operator/revoke-before", r#"{"before":"yesterday"}"#),
        ("/api/operator/revoke-before", r#"{"before":-1}"#),
        ("/api/operator/reset-factor", r#"{}"#),
        ("/api/operator/lift-lock", r#"{"login":["marie"]}"#),
    ] {
        let (status, answer) = post_json(&lab, &mut operator, uri, sent).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {sent}");
        assert!(answer["error"].is_string());
    }
    assert_eq!(marie.get(&lab, "/seekers").await.status(), StatusCode::OK);

    // Formation Nord's sessions end; Marie's next request is refused.
    let (status, answer) = post_json(
        &lab,
        &mut operator,
        "/api/operator/revoke-org",
        r#"{"org":"formation-nord"}"#,
    )
    .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({ "ended": 1 })));
    assert_eq!(
        marie.get(&lab, "/seekers").await.status(),
        StatusCode::SEE_OTHER
    );

    // Ines: a user's sessions, her factor reset, a lock lifted.
    let (status, answer) = post_json(
        &lab,
        &mut operator,
        "/api/operator/revoke-user",
        r#"{"login":"ines"}"#,
    )
    .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({ "ended": 1 })));
    let (_, answer) = post_json(
        &lab,
        &mut operator,
        "/api/operator/reset-factor",
        r#"{"login":"ines"}"#,
    )
    .await;
    assert_eq!(answer, json!({ "had_factor": true }));
    let (_, answer) = post_json(
        &lab,
        &mut operator,
        "/api/operator/reset-factor",
        r#"{"login":"ines"}"#,
    )
    .await;
    assert_eq!(answer, json!({ "had_factor": false }));
    assert_eq!(
        lab.try_code("lea", &lab.code("lea")).await.status(),
        StatusCode::UNAUTHORIZED,
        "locked"
    );
    let (status, answer) = post_json(
        &lab,
        &mut operator,
        "/api/operator/lift-lock",
        r#"{"login":"lea"}"#,
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({ "lifted": true }))
    );
    assert_eq!(
        lab.try_code("lea", &lab.code("lea")).await.status(),
        StatusCode::OK
    );

    // Everything issued before now, the operator's own session included.
    let now = verrou::Clock::now(&lab.clock).unwrap().unix_seconds() + 1;
    let sent = json!({ "before": now }).to_string();
    let (status, answer) =
        post_json(&lab, &mut operator, "/api/operator/revoke-before", &sent).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["ended"].as_u64().unwrap() >= 2, "{answer}");
    let gone = operator
        .send(&lab, operator.api("GET", "/api/operator/audit", None))
        .await;
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);

    // A new operator session reads the trail, filtered; a time that is not one is a 400.
    let (mut operator, _) = api_signed_in(&lab, "operateur").await;
    let uri = "/api/operator/audit?kind=session_revoked&user=marie";
    let rows = body(operator.send(&lab, operator.api("GET", uri, None)).await).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["user"].as_str(), rows[0]["org"].as_str()),
        (Some("marie"), Some("formation-nord"))
    );
    for bad in [
        "/api/operator/audit?from=yesterday",
        "/api/operator/audit?to=2026-13-45T99:99",
        "/api/operator/audit?user=a&user=b",
    ] {
        let response = operator.send(&lab, operator.api("GET", bad, None)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Every route that takes a JSON body, with each kind of bad body: a 4xx that says what was
/// wrong, never a 500, and nothing done (the operator's session, which every route accepts as
/// live, is still there at the end and the organisation's sessions are not ended).
#[tokio::test]
async fn every_json_route_refuses_each_malformed_body() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let (mut operator, _) = api_signed_in(&lab, "operateur").await;
    let routes = [
        ("/api/sign-in", "login"),
        ("/api/second-factor", "code"),
        ("/api/enrolment/confirm", "code"),
        ("/api/export", "q"),
        ("/api/operator/revoke-org", "org"),
        ("/api/operator/revoke-user", "login"),
        ("/api/operator/revoke-before", "before"),
        ("/api/operator/reset-factor", "login"),
        ("/api/operator/lift-lock", "login"),
    ];
    let huge = "7".repeat(1 << 20);
    for (route, field) in routes {
        let mut cases: Vec<(&str, String, StatusCode)> = vec![
            (
                "a number",
                json!({ field: 123_456 }).to_string(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "null",
                json!({ field: null }).to_string(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "an array",
                json!({ field: ["1", "2"] }).to_string(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "an object",
                json!({ field: { "$gt": "" } }).to_string(),
                StatusCode::BAD_REQUEST,
            ),
            ("not JSON", format!("{field}=1"), StatusCode::BAD_REQUEST),
            (
                "1 MB",
                json!({ field: huge }).to_string(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        if field == "before" {
            // A number is this field's type: a string is the wrong one.
            cases[0] = (
                "a string",
                json!({ field: "now" }).to_string(),
                StatusCode::BAD_REQUEST,
            );
        }
        if field != "q" {
            cases.push(("missing", "{}".to_owned(), StatusCode::BAD_REQUEST));
        }
        for (case, sent, expected) in cases {
            let response = operator
                .send(&lab, operator.api("POST", route, Some(&sent)))
                .await;
            let status = response.status();
            assert_eq!(status, expected, "{route} with {case}");
            assert!(
                body(response).await["error"].is_string(),
                "{route} with {case}"
            );
        }
        // Another media type: 415; no API header: 403.
        let mut form = operator.api("POST", route, Some(&json!({ field: "x" }).to_string()));
        form.headers_mut().insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let status = operator.send(&lab, form).await.status();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{route}");
        let mut unmarked = operator.api("POST", route, Some(&json!({ field: "x" }).to_string()));
        unmarked.headers_mut().remove("x-portal-api");
        let status = operator.send(&lab, unmarked).await.status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
    }
    // Nothing happened: both sessions live, no session revoked.
    assert_eq!(marie.get(&lab, "/seekers").await.status(), StatusCode::OK);
    let live = operator
        .send(&lab, operator.api("GET", "/api/sessions", None))
        .await;
    assert_eq!(live.status(), StatusCode::OK);
    let trail = lab.portal.verrou.audit_trail(None, 500).await.unwrap();
    assert!(!trail
        .iter()
        .any(|event| matches!(event.kind, verrou::AuditKind::SessionRevoked { .. })));
}
