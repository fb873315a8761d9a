//! What partners' staff and the operator go through.

use std::time::Duration;

use axum::http::StatusCode;

use crate::support::{code_for, csrf_in, location, text, Browser, Lab};

#[tokio::test]
async fn staff_sign_in_with_a_code_and_see_only_their_organisation() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let response = marie.get(&lab, "/").await;
    assert_eq!(location(&response), "/seekers");
    let html = text(marie.get(&lab, "/seekers").await).await;
    assert!(
        html.contains("Job-seekers followed by Formation Nord"),
        "{html}"
    );
    assert!(html.contains("200 job-seekers"), "{html}");
    // A record of hers, and one of another organisation's (not found).
    let id = html
        .split("href=\"/seekers/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let record = marie.get(&lab, &format!("/seekers/{id}")).await;
    assert_eq!(record.status(), StatusCode::OK);
    let (theirs, _) = lab.portal.db.seekers("campus-est", "", 1, 1).await.unwrap();
    let response = marie.get(&lab, &format!("/seekers/{}", theirs[0].id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Search.
    let html = text(marie.get(&lab, "/seekers?q=Lille").await).await;
    assert!(html.contains("match"), "{html}");
    assert!(!html.contains("<td>Reims</td>"));
}

#[tokio::test]
async fn the_same_code_is_refused_the_second_time() {
    let lab = Lab::new().await;
    let mut first = Browser::default();
    let password = lab.account("ines").password.clone();
    first.sign_in(&lab, "ines", &password).await;
    let code = lab.code("ines");
    let ok = first
        .submit(&lab, "/second-factor", "/second-factor", &[("code", &code)])
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let mut second = Browser::default();
    second.sign_in(&lab, "ines", &password).await;
    let refused = second
        .submit(&lab, "/second-factor", "/second-factor", &[("code", &code)])
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(text(refused).await.contains("That code was not accepted."));
}

#[tokio::test]
async fn a_new_account_enrols_makes_recovery_codes_and_signs_in_with_one() {
    let lab = Lab::new().await;
    let mut paul = Browser::default();
    let password = lab.account("paul").password.clone();
    paul.sign_in(&lab, "paul", &password).await;
    let response = paul.get(&lab, "/second-factor").await;
    assert_eq!(location(&response), "/enrol");
    let page = paul.get(&lab, "/enrol").await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = text(page).await;
    assert!(html.contains("<svg"), "the QR code is inline");
    let key = html
        .split("<code class=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let token = csrf_in(&html).unwrap();
    let response = paul
        .post(
            &lab,
            "/enrol",
            &token,
            &[("code", &code_for(&key, &lab.clock))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "enrolment confirmed");
    paul.bind(&lab, &response).await;
    let html = text(paul.get(&lab, "/account?enrolled=1").await).await;
    assert!(html.contains("Now make your recovery codes"));
    let token = csrf_in(&html).unwrap();
    let codes_page = paul
        .post(&lab, "/account/recovery-codes", &token, &[])
        .await;
    assert_eq!(codes_page.status(), StatusCode::OK);
    let html = text(codes_page).await;
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(html.contains("download=\"recovery-codes.txt\""));

    // Signed out; in again with a recovery code instead of the app.
    let token = csrf_in(&html).unwrap();
    let out = paul.post(&lab, "/logout", &token, &[]).await;
    assert_eq!(location(&out), "/sign-in");
    paul.sign_in(&lab, "paul", &password).await;
    let response = paul
        .submit(
            &lab,
            "/second-factor?method=recovery",
            "/second-factor",
            &[("code", &codes[0]), ("method", "recovery")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "recovery code accepted");
    assert_eq!(
        lab.portal
            .verrou
            .remaining_recovery_codes(&verrou::UserId::new("paul").unwrap())
            .await
            .unwrap(),
        9
    );
}

#[tokio::test]
async fn a_session_revoked_from_another_browser_is_signed_out_at_its_next_request() {
    let lab = Lab::new().await;
    let mut laptop = lab.signed_in("lea").await;
    let mut phone = lab.signed_in("lea").await;
    let html = text(phone.get(&lab, "/sessions").await).await;
    assert_eq!(
        html.matches("<tr>").count(),
        3,
        "two sessions and a header: {html}"
    );
    assert!(
        html.contains("the browser&#39;s DBSC key") || html.contains("the browser's DBSC key"),
        "{html}"
    );
    assert!(
        html.contains("198.51.100.20"),
        "the address each session started from"
    );
    let response = phone
        .submit(&lab, "/sessions", "/sessions/revoke-others", &[])
        .await;
    assert_eq!(location(&response), "/sessions?notice=others");
    let response = laptop.get(&lab, "/seekers").await;
    assert_eq!(location(&response), "/sign-in?next=%2Fseekers");
    let response = phone.get(&lab, "/seekers").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn sensitive_actions_ask_for_a_fresh_code() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    // Six minutes on (the device keeps its bound cookie fresh meanwhile).
    lab.clock.advance(Duration::from_secs(4 * 60));
    marie.renew(&lab).await;
    let html = text(marie.get(&lab, "/account").await).await;
    let token = csrf_in(&html).unwrap();
    lab.clock.advance(Duration::from_secs(2 * 60));
    let response = marie
        .post(&lab, "/account/recovery-codes", &token, &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&response).starts_with("/second-factor"),
        "{}",
        location(&response)
    );
}

#[tokio::test]
async fn the_operator_sees_no_job_seeker() {
    let lab = Lab::new().await;
    let mut operator = lab.signed_in("operateur").await;
    assert_eq!(location(&operator.get(&lab, "/").await), "/operator");
    let response = operator.get(&lab, "/seekers").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
