//! Two portal instances on one PostgreSQL database (`VERROU_TEST_POSTGRES_URL`, a schema of the
//! test's own): they behave as one. A code accepted on one is refused on the other, guessing is
//! counted on both together, a revocation on one is enforced by the other at its next request,
//! and the export cap is shared.

use std::time::Duration;

use axum::http::StatusCode;
use verrou_axum::TrustedProxies;
use verrou_portal::app::ExportLimits;

use crate::postgres::Schema;
use crate::support::{csrf_in, location, text, Browser, Lab};

/// Two instances on one database, in a schema of their own.
async fn pair(exports: ExportLimits) -> (Lab, Lab, Schema) {
    let schema = Schema::create().await;
    let a = Lab::on(
        Some(schema.database.clone()),
        TrustedProxies::none(),
        exports,
    )
    .await;
    let b = a.twin().await;
    (a, b, schema)
}

#[tokio::test]
async fn two_instances_on_postgres_behave_as_one() {
    let exports = ExportLimits {
        per_export: 60,
        per_org_per_day: 100,
        ..Default::default()
    };
    let (a, b, _schema) = pair(exports).await;
    let password = a.account("marie").password.clone();

    // A code accepted on A is refused on B.
    let mut on_a = Browser::default();
    on_a.sign_in(&a, "marie", &password).await;
    let code = a.code("marie");
    let accepted = on_a
        .submit(&a, "/second-factor", "/second-factor", &[("code", &code)])
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    on_a.bind(&a, &accepted).await;
    let mut on_b = Browser::default();
    on_b.sign_in(&b, "marie", &password).await;
    let replayed = on_b
        .submit(&b, "/second-factor", "/second-factor", &[("code", &code)])
        .await;
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "the step was used on A"
    );

    // Guessing is counted on both: alternating instances meets the throttle all the same.
    let mut throttled = false;
    for attempt in 0..8 {
        let lab = if attempt % 2 == 0 { &a } else { &b };
        let mut guesser = Browser::default();
        guesser
            .sign_in(lab, "ines", &a.account("ines").password)
            .await;
        let response = guesser
            .submit(
                lab,
                "/second-factor",
                "/second-factor",
                &[("code", "000000")],
            )
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "eight guesses over two instances are throttled");
    let ines = verrou::UserId::new("ines").unwrap();
    let state = b.portal.verrou.account_throttle(&ines).await.unwrap();
    assert!(!format!("{state:?}").contains("failures: 0"), "{state:?}");

    // The export cap is shared: 60 on A, then 60 more on B would pass 100.
    let html = text(on_a.get(&a, "/seekers").await).await;
    let token = csrf_in(&html).unwrap();
    let first = on_a.post(&a, "/seekers/export", &token, &[("q", "")]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = on_a.post(&b, "/seekers/export", &token, &[("q", "")]).await;
    assert_eq!(
        second.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "B counts A's export"
    );

    // The operator ends Formation Nord's sessions on B; Marie's next request on A is refused.
    a.clock.advance(Duration::from_secs(30));
    let mut operator = b.signed_in("operateur").await;
    let html = text(operator.get(&b, "/operator").await).await;
    let token = csrf_in(&html).unwrap();
    let ended = operator
        .post(
            &b,
            "/operator/revoke-org",
            &token,
            &[("org", "formation-nord")],
        )
        .await;
    // Marie's two sessions: the one on A and the password-only one on B.
    assert_eq!(location(&ended), "/operator?notice=revoked&n=2");
    let response = on_a.get(&a, "/seekers").await;
    assert_eq!(location(&response), "/sign-in?next=%2Fseekers");
}
