//! verrou's outcomes and errors as answers: status, Retry-After, and no internal text.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use verrou::error::{StoreError, StoreErrorKind};
use verrou::testing::insecure_fresh_proof;
use verrou::{ClientContext, TotpParams};
use verrou_axum::{Failure, Outcome, Refusal};

use crate::support::{json, text, World};

#[tokio::test]
async fn every_refusal_has_its_status() {
    let table = [
        (Refusal::Malformed, 400, false),
        (Refusal::Invalid, 401, false),
        (Refusal::Replayed, 401, false),
        (Refusal::NoSession, 401, false),
        (
            Refusal::Throttled {
                retry_after: Duration::from_millis(1500),
            },
            429,
            true,
        ),
        (
            Refusal::Locked {
                until: Some(verrou::Timestamp::from_unix_seconds(4_000_000_000).unwrap()),
            },
            429,
            true,
        ),
        (Refusal::Locked { until: None }, 403, false),
        (
            Refusal::Busy {
                retry_after: Duration::from_secs(1),
            },
            503,
            true,
        ),
        (Refusal::StepUpRequired, 403, false),
        (Refusal::NotEnrolled, 403, false),
        (Refusal::NoActiveFactor, 409, false),
        (Refusal::NotPending, 409, false),
        (Refusal::Expired, 410, false),
    ];
    for (refusal, status, retry) in table {
        let response = refusal.into_response();
        assert_eq!(response.status().as_u16(), status, "{refusal:?}");
        assert_eq!(
            response.headers().contains_key(header::RETRY_AFTER),
            retry,
            "{refusal:?}"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = json(response).await;
        assert_eq!(body["error"], refusal.code());
        assert_eq!(body["message"], refusal.message());
    }
    // Rounded up: a client that waits what it is told is not refused again.
    let response = Refusal::Throttled {
        retry_after: Duration::from_millis(1500),
    }
    .into_response();
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
}

#[tokio::test]
async fn real_outcomes_map_to_400_401_429_and_403() {
    let w = World::new().await;
    let ctx = ClientContext::unknown();
    let malformed = w.verrou.verify_totp(&w.user, "12a456", &ctx).await.unwrap();
    assert_eq!(
        malformed.into_result().unwrap_err().status(),
        StatusCode::BAD_REQUEST
    );
    let mut throttled = None;
    for _ in 0..10 {
        let refusal = w
            .verrou
            .verify_totp(&w.user, "000000", &ctx)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        match refusal {
            Refusal::Invalid => assert_eq!(refusal.status(), StatusCode::UNAUTHORIZED),
            other => {
                throttled = Some(other);
                break;
            }
        }
    }
    let throttled = throttled.expect("guessing is throttled");
    assert!(
        matches!(throttled, Refusal::Throttled { .. }),
        "{throttled:?}"
    );
    let response = throttled.into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);

    // A proof older than the step-up window: new recovery codes are refused with 403.
    w.verrou.lift_lock(&w.user).await.unwrap();
    let proof = insecure_fresh_proof(&w.verrou, &w.user, &w.secret, TotpParams::DEFAULT)
        .await
        .unwrap()
        .unwrap();
    w.clock.advance(Duration::from_secs(6 * 60));
    let outcome = w.verrou.generate_recovery_codes(proof, &ctx).await.unwrap();
    let refusal = outcome.into_result().unwrap_err();
    assert_eq!(refusal, Refusal::StepUpRequired);
    assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_store_failure_is_a_bare_500_and_refused_input_a_400() {
    let error = verrou::Error::from(StoreError::new(
        StoreErrorKind::Backend,
        "SELECT secret_sauce FROM verrou_factors",
    ));
    let response = Failure::from(error).into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert_eq!(body, "internal error");
    // The narrower errors convert too (`?` on `UserId::new` in a handler).
    let input = verrou::UserId::new("").unwrap_err();
    let response = Failure::from(input).into_response();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_input");
}
