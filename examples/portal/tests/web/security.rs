//! Headers, cookies, CSRF, body limits, trusted proxies and messages that tell nothing.

use axum::body::Body;
use axum::http::{header, StatusCode};
use verrou::AuditKind;
use verrou_axum::TrustedProxies;
use verrou_portal::security::{BODY_LIMIT, CONTENT_SECURITY_POLICY, CSRF_COOKIE};

use crate::support::{csrf_in, text, Browser, Lab};

/// Every state-changing route.
const POSTS: [&str; 15] = [
    "/seekers/export",
    "/operator/revoke-org",
    "/operator/revoke-user",
    "/operator/revoke-before",
    "/operator/reset-factor",
    "/operator/lift-lock",
    "/sign-in",
    "/second-factor",
    "/enrol",
    "/logout",
    "/account/recovery-codes",
    "/account/reenrol",
    "/account/reenrol/confirm",
    "/sessions/revoke",
    "/sessions/revoke-others",
];

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    for path in [
        "/sign-in",
        "/seekers",
        "/seekers/1",
        "/account",
        "/sessions",
        "/nowhere",
        "/seekers/x",
    ] {
        let response = marie.get(&lab, path).await;
        let headers = response.headers();
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin", "{path}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
    }
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    let css = marie.get(&lab, "/static/portal.css").await;
    assert_eq!(css.headers()[header::CACHE_CONTROL], "public, max-age=3600");
}

#[tokio::test]
async fn every_cookie_is_host_only_secure_http_only_and_same_site_strict() {
    let lab = Lab::new().await;
    let mut browser = Browser::default();
    let first = browser.get(&lab, "/sign-in").await;
    let mut set: Vec<String> = first
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let password = lab.account("marie").password.clone();
    let signed = browser.sign_in(&lab, "marie", &password).await;
    set.extend(
        signed
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned()),
    );
    assert!(set.iter().any(|c| c.starts_with(CSRF_COOKIE)));
    assert!(set.iter().any(|c| c.starts_with("__Host-verrou-session=")));
    for cookie in set {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        for attribute in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Strict"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    }
}

#[tokio::test]
async fn every_state_changing_form_needs_its_token_and_this_site() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let html = text(marie.get(&lab, "/account").await).await;
    let token = csrf_in(&html).unwrap();
    let mut other = Browser::default();
    let others_token = csrf_in(&text(other.get(&lab, "/sign-in").await).await).unwrap();
    for path in POSTS {
        for (case, token, site) in [
            ("no token", "", "same-origin"),
            (
                "another browser's token",
                others_token.as_str(),
                "same-origin",
            ),
            ("from another site", token.as_str(), "cross-site"),
        ] {
            let body = if token.is_empty() {
                "code=123456".to_owned()
            } else {
                format!("csrf={token}&code=123456")
            };
            let request = marie
                .request_from(site, "POST", path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            let response = marie.send(&lab, request).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}: {case}");
        }
    }
    // Nothing happened: Marie's session is alive.
    assert_eq!(marie.get(&lab, "/seekers").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_oversize_form_is_refused_with_413() {
    let lab = Lab::new().await;
    let mut browser = Browser::default();
    let token = csrf_in(&text(browser.get(&lab, "/sign-in").await).await).unwrap();
    let padding = "x".repeat(BODY_LIMIT + 1);
    let response = browser
        .post(
            &lab,
            "/sign-in",
            &token,
            &[("login", &padding), ("password", "p")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_login_and_wrong_password_read_alike() {
    let lab = Lab::new().await;
    let mut one = Browser::default();
    let mut two = Browser::default();
    let unknown = one.sign_in(&lab, "nobody", "whatever").await;
    let wrong = two.sign_in(&lab, "marie", "whatever").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (unknown, wrong) = (text(unknown).await, text(wrong).await);
    let strip = |html: &str| html.replace(&csrf_in(html).unwrap(), "");
    assert_eq!(strip(&unknown), strip(&wrong));
    assert!(unknown.contains("Wrong login or password."));
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    for (proxies, expected) in [
        (TrustedProxies::none(), "198.51.100.20"),
        (
            TrustedProxies::new(["198.51.100.0/24"]).unwrap(),
            "203.0.113.77",
        ),
    ] {
        let lab = Lab::with(proxies).await;
        let mut browser = Browser::default();
        let token = csrf_in(&text(browser.get(&lab, "/sign-in").await).await).unwrap();
        let password = lab.account("marie").password.clone();
        let body = serde_urlencoded::to_string([
            ("csrf", token.as_str()),
            ("login", "marie"),
            ("password", &password),
        ])
        .unwrap();
        let request = browser
            .request("POST", "/sign-in")
            .header("x-forwarded-for", "203.0.113.77")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        let response = browser.send(&lab, request).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let trail = lab.portal.verrou.audit_trail(None, 50).await.unwrap();
        let created = trail
            .iter()
            .find(|e| matches!(e.kind, AuditKind::SessionCreated { .. }))
            .unwrap();
        assert_eq!(created.client.unwrap().to_string(), expected);
    }
}

#[tokio::test]
async fn errors_name_no_internal_cause() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    for path in ["/nowhere", "/seekers/999999999", "/seekers/not-a-number"] {
        let response = marie.get(&lab, path).await;
        let body = text(response).await.to_lowercase();
        for leak in [
            "sqlx",
            "sqlite",
            "panicked",
            "backtrace",
            "select ",
            "error:",
        ] {
            assert!(!body.contains(leak), "{path} shows {leak}: {body}");
        }
    }
}

#[tokio::test]
async fn a_locked_account_reads_like_a_wrong_code() {
    let lab = Lab::new().await;
    let wrong = lab.try_code("lea", "000000").await;
    let (wrong_status, wrong_page) = (wrong.status(), text(wrong).await);
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    // Ten failures, an hour apart (past every backoff): the account is locked.
    lab.fail_codes("lea", 9).await;
    let user = verrou::UserId::new("lea").unwrap();
    let throttle = lab.portal.verrou.account_throttle(&user).await.unwrap();
    assert!(format!("{throttle:?}").contains("Locked"), "{throttle:?}");
    // The right code now: refused, and the page says what a wrong code's says.
    let right = lab.try_code("lea", &lab.code("lea")).await;
    let (status, page) = (right.status(), text(right).await);
    assert_eq!(status, wrong_status);
    let strip = |html: &str| html.replace(&csrf_in(html).unwrap(), "");
    assert_eq!(strip(&page), strip(&wrong_page));
}

#[tokio::test]
async fn password_guessing_is_throttled_per_login_whether_it_exists_or_not() {
    let lab = Lab::new().await;
    for login in ["marie", "nobody-here"] {
        let mut statuses = Vec::new();
        for _ in 0..verrou_portal::passwords::PER_LOGIN + 1 {
            let mut browser = Browser::default();
            statuses.push(browser.sign_in(&lab, login, "guess").await.status());
        }
        let last = *statuses.last().unwrap();
        assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "{login}: {statuses:?}");
        assert!(statuses[..statuses.len() - 1]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED));
    }
    // Even the right password waits out the window, then works, and resets the count.
    let password = lab.account("marie").password.clone();
    let mut browser = Browser::default();
    let refused = browser.sign_in(&lab, "marie", &password).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    lab.clock.advance(verrou_portal::passwords::WINDOW);
    let signed_in = browser.sign_in(&lab, "marie", &password).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn password_guessing_from_one_address_is_throttled_across_logins() {
    let lab = Lab::new().await;
    let mut last = StatusCode::OK;
    for n in 0..verrou_portal::passwords::PER_ADDRESS + 1 {
        let mut browser = Browser::default();
        last = browser
            .sign_in(&lab, &format!("user-{n}"), "guess")
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // From another address, the same logins are still only wrong.
    let mut elsewhere = Browser {
        peer: Some("203.0.113.50:1000".into()),
        ..Browser::default()
    };
    let response = elsewhere.sign_in(&lab, "user-1", "guess").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
