//! Service rules over each backend: a factor reset leaves no working recovery code.

use std::sync::Arc;

use tokio::sync::Barrier;
use verrou::store::Store;
use verrou::{ClientContext, RecoveryCodesOutcome, RecoveryOutcome, UserId, VerrouConfig};

use crate::support::*;

/// The attack the review found, through the service: an intruder holding a fresh proof
/// keeps regenerating while an operator resets the factor. After the reset no code the
/// intruder was shown works, and no later regeneration stores any.
pub async fn service_a_reset_leaves_no_working_recovery_code<S: Store + 'static>(store: S) {
    let small = VerrouConfig::new("Portail Partenaires")
        .unwrap()
        .with_recovery_set_size(2)
        .unwrap();
    let e = enrolled(store, small).await;
    // The intruder passed the second factor three times (three proofs, each good once).
    let mut proofs = Vec::new();
    for _ in 0..3 {
        proofs.push(e.accept(&e.code(0)).await.proof);
        e.advance_steps(1);
    }
    let barrier = Arc::new(Barrier::new(3));
    let regenerate = |verrou: Arc<verrou::Verrou<S, _>>, proof: verrou::SecondFactorProof| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            verrou
                .generate_recovery_codes(proof, &ClientContext::unknown())
                .await
                .unwrap()
        })
    };
    let after = proofs.pop().unwrap();
    let first = regenerate(e.verrou.clone(), proofs.pop().unwrap());
    let second = regenerate(e.verrou.clone(), proofs.pop().unwrap());
    let reset = {
        let (verrou, who, barrier) = (e.verrou.clone(), e.user.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            verrou.remove_totp_factor(&who).await.unwrap()
        })
    };
    assert!(reset.await.unwrap());
    let mut shown = Vec::new();
    for outcome in [first.await.unwrap(), second.await.unwrap()] {
        match outcome {
            RecoveryCodesOutcome::Generated(set) => shown.extend(
                set.codes()
                    .iter()
                    .map(|code| secrecy::ExposeSecret::expose_secret(code).to_owned()),
            ),
            RecoveryCodesOutcome::NoActiveFactor => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_no_code_works(&e.verrou, &e.user, &shown).await;
    let after = e
        .verrou
        .generate_recovery_codes(after, &ClientContext::unknown())
        .await
        .unwrap();
    assert!(
        matches!(after, RecoveryCodesOutcome::NoActiveFactor),
        "{after:?}"
    );
}

/// Every code in `codes` is refused for `who`, and none is left.
pub async fn assert_no_code_works<S: Store, C: verrou::Clock>(
    verrou: &verrou::Verrou<S, C>,
    who: &UserId,
    codes: &[String],
) {
    assert_eq!(verrou.remaining_recovery_codes(who).await.unwrap(), 0);
    for code in codes {
        // Each refusal counts a failure: clear them so every code is really checked.
        verrou.lift_lock(who).await.unwrap();
        let outcome = verrou
            .verify_recovery_code(who, code, &ClientContext::unknown())
            .await
            .unwrap();
        assert!(
            matches!(outcome, RecoveryOutcome::Invalid),
            "a code outlived the reset: {outcome:?}"
        );
    }
}
