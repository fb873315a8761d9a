//! The operator console: the incident response of the breach, live, without a shutdown.

use std::time::Duration;

use axum::http::StatusCode;
use verrou::UserId;

use crate::support::{csrf_in, location, text, Browser, Lab};

/// The operator's console page and its form token.
async fn console(lab: &Lab, operator: &mut Browser, query: &str) -> (StatusCode, String) {
    let response = operator.get(lab, &format!("/operator{query}")).await;
    (response.status(), text(response).await)
}

async fn act(lab: &Lab, operator: &mut Browser, action: &str, fields: &[(&str, &str)]) -> String {
    let (_, html) = console(lab, operator, "").await;
    let token = csrf_in(&html).unwrap();
    let response = operator.post(lab, action, &token, fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
    location(&response)
}

#[tokio::test]
async fn only_an_operator_reaches_the_console() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    assert_eq!(console(&lab, &mut marie, "").await.0, StatusCode::FORBIDDEN);
    let html = text(marie.get(&lab, "/seekers").await).await;
    let token = csrf_in(&html).unwrap();
    let response = marie
        .post(
            &lab,
            "/operator/revoke-org",
            &token,
            &[("org", "campus-est")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let mut operator = lab.signed_in("operateur").await;
    assert_eq!(console(&lab, &mut operator, "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_organisations_sessions_end_at_their_next_request() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let mut ines = lab.signed_in("ines").await;
    let mut operator = lab.signed_in("operateur").await;
    let to = act(
        &lab,
        &mut operator,
        "/operator/revoke-org",
        &[("org", "formation-nord")],
    )
    .await;
    assert_eq!(to, "/operator?notice=revoked&n=1");
    assert_eq!(
        location(&marie.get(&lab, "/seekers").await),
        "/sign-in?next=%2Fseekers"
    );
    assert_eq!(
        ines.get(&lab, "/seekers").await.status(),
        StatusCode::OK,
        "another organisation"
    );
    // A user's, and everything before an instant (the operator's own included).
    act(
        &lab,
        &mut operator,
        "/operator/revoke-user",
        &[("login", "ines")],
    )
    .await;
    assert_eq!(
        location(&ines.get(&lab, "/seekers").await),
        "/sign-in?next=%2Fseekers"
    );
    let mut lea = lab.signed_in("lea").await;
    lab.clock.advance(Duration::from_secs(60));
    let later = verrou_portal::time::format_utc(
        i64::try_from(verrou::Clock::now(&lab.clock).unwrap().unix_seconds()).unwrap(),
    )
    .replace(' ', "T");
    act(
        &lab,
        &mut operator,
        "/operator/revoke-before",
        &[("before", &later)],
    )
    .await;
    assert_eq!(
        location(&lea.get(&lab, "/seekers").await),
        "/sign-in?next=%2Fseekers"
    );
    assert_eq!(
        location(&operator.get(&lab, "/operator").await),
        "/sign-in?next=%2Foperator"
    );
}

#[tokio::test]
async fn a_reset_factor_sends_the_user_to_enrolment_and_a_lifted_lock_lets_them_in() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let mut operator = lab.signed_in("operateur").await;
    let to = act(
        &lab,
        &mut operator,
        "/operator/reset-factor",
        &[("login", "marie")],
    )
    .await;
    assert_eq!(to, "/operator?notice=reset");
    assert_eq!(
        location(&marie.get(&lab, "/seekers").await),
        "/sign-in?next=%2Fseekers"
    );
    let mut again = Browser::default();
    let password = lab.account("marie").password.clone();
    again.sign_in(&lab, "marie", &password).await;
    assert_eq!(location(&again.get(&lab, "/second-factor").await), "/enrol");

    // Lea locks herself out; the operator lifts it.
    let lea = UserId::new("lea").unwrap();
    lab.fail_codes("lea", 10).await;
    let locked = lab.portal.verrou.account_throttle(&lea).await.unwrap();
    assert!(format!("{locked:?}").contains("Locked"), "{locked:?}");
    let mut operator = lab.signed_in("operateur").await;
    act(
        &lab,
        &mut operator,
        "/operator/lift-lock",
        &[("login", "lea")],
    )
    .await;
    let lifted = lab.portal.verrou.account_throttle(&lea).await.unwrap();
    assert!(!format!("{lifted:?}").contains("Locked"), "{lifted:?}");
}

#[tokio::test]
async fn every_action_needs_a_fresh_second_factor() {
    let lab = Lab::new().await;
    let mut operator = lab.signed_in("operateur").await;
    let (_, html) = console(&lab, &mut operator, "").await;
    let token = csrf_in(&html).unwrap();
    lab.clock.advance(Duration::from_secs(4 * 60));
    operator.renew(&lab).await;
    lab.clock.advance(Duration::from_secs(2 * 60));
    let response = operator
        .post(
            &lab,
            "/operator/revoke-org",
            &token,
            &[("org", "campus-est")],
        )
        .await;
    assert!(location(&response).starts_with("/second-factor"));
    assert_eq!(
        console(&lab, &mut operator, "").await.0,
        StatusCode::OK,
        "reading needs no step-up"
    );
}

#[tokio::test]
async fn the_audit_trail_filters_by_user_organisation_kind_and_time() {
    let lab = Lab::new().await;
    let _marie = lab.signed_in("marie").await;
    let _ines = lab.signed_in("ines").await;
    lab.portal
        .db
        .audit(
            1_800_000_100,
            "marie",
            Some("formation-nord"),
            "export_cap_alert",
            "4000 of 5000",
        )
        .await
        .unwrap();
    let mut operator = lab.signed_in("operateur").await;
    let (_, all) = console(&lab, &mut operator, "").await;
    assert!(all.contains("session_created") && all.contains("export_cap_alert"));
    let (_, alerts) = console(&lab, &mut operator, "?kind=export_cap_alert").await;
    assert_eq!(alerts.matches("<td>export_cap_alert</td>").count(), 1);
    assert!(!alerts.contains("<td>session_created</td>"));
    let (_, ines) = console(&lab, &mut operator, "?org=atelier-sud").await;
    assert!(ines.contains("<td>ines</td>") && !ines.contains("<td>marie</td>"));
    let (_, marie) = console(
        &lab,
        &mut operator,
        "?user=marie&kind=second_factor_verified",
    )
    .await;
    assert!(!marie.contains("<td>ines</td>"));
    let (_, early) = console(&lab, &mut operator, "?to=2027-01-15T08:00").await;
    assert!(
        !early.contains("<td>session_created</td>"),
        "nothing signed in before 08:00"
    );
}
