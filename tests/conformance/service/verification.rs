//! Service rules over each backend: one acceptance per code, replays, bursts, recovery-code
//! races and the audit trail.

use std::time::Duration;

use verrou::lockout::ThrottlePolicy;
use verrou::store::backend::ThrottleKey;
use verrou::store::Store;
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::{ClientContext, Clock, RecoveryOutcome, TotpOutcome, TotpParams, Verrou};

use crate::support::*;

pub async fn service_accepts_a_valid_code_once<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let code = e.code(0);
    let first = e.verify(&code).await;
    assert!(
        matches!(first, TotpOutcome::Accepted(ref a) if a.drift == 0),
        "{first:?}"
    );
    let again = e.verify(&code).await;
    assert_eq!(again, TotpOutcome::Replayed);
}

/// 32 concurrent verifications of one valid code: exactly one `Accepted`.
pub async fn service_race_accepts_one<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let code = e.code(0);
    let results = race(|_| {
        let (verrou, who, code) = (e.verrou.clone(), e.user.clone(), code.clone());
        async move {
            let ctx = ClientContext::unknown();
            verrou.verify_totp(&who, &code, &ctx).await.unwrap()
        }
    })
    .await;
    for outcome in &results {
        assert!(
            matches!(
                outcome,
                TotpOutcome::Accepted(_) | TotpOutcome::Replayed | TotpOutcome::Throttled { .. }
            ),
            "unexpected {outcome:?}"
        );
    }
    let accepted = results
        .iter()
        .filter(|r| matches!(r, TotpOutcome::Accepted(_)))
        .count();
    assert_eq!(accepted, 1);
}

/// A later step accepted first makes an earlier (still in-window) code unusable.
pub async fn service_refuses_an_earlier_step_after_a_later_one<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let earlier = e.code(-1);
    let later = e.code(1);
    e.accept(&later).await;
    assert_eq!(e.verify(&earlier).await, TotpOutcome::Replayed);
    assert_eq!(e.verify(&e.code(0)).await, TotpOutcome::Replayed);
}

/// A burst of concurrent wrong guesses at one instant: only `free_failures` (3) codes are
/// compared; every other request is refused by the throttle before any check.
pub async fn service_burst_is_throttled<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let valid: u32 = e.code(0).parse().unwrap();
    let results = race(|i| {
        let (verrou, who) = (e.verrou.clone(), e.user.clone());
        let guess = format!("{:06}", (valid + 1 + i as u32) % 1_000_000);
        async move {
            let ctx = ClientContext::unknown();
            verrou.verify_totp(&who, &guess, &ctx).await.unwrap()
        }
    })
    .await;
    let (mut checked, mut refused) = (0, 0);
    for outcome in results {
        match outcome {
            TotpOutcome::Invalid | TotpOutcome::Replayed => checked += 1,
            TotpOutcome::Throttled { .. } | TotpOutcome::Locked { .. } => refused += 1,
            other => panic!("a wrong guess gave {other:?}"),
        }
    }
    assert_eq!(
        checked, 3,
        "only the free attempts may reach the comparison"
    );
    assert_eq!(refused, RACERS - 3);
}

/// 32 concurrent logins with one valid recovery code: exactly one `Accepted`, and the set
/// then holds one fewer.
pub async fn service_recovery_code_race_accepts_one<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let code = e.recovery_codes().await[3].clone();
    let results = race(|_| {
        let (verrou, who, code) = (e.verrou.clone(), e.user.clone(), code.clone());
        async move {
            let ctx = ClientContext::unknown();
            verrou
                .verify_recovery_code(&who, &code, &ctx)
                .await
                .unwrap()
        }
    })
    .await;
    let accepted = results
        .iter()
        .filter(|r| matches!(r, RecoveryOutcome::Accepted { remaining: 9, .. }))
        .count();
    assert_eq!(accepted, 1, "{results:?}");
    for outcome in &results {
        assert!(
            matches!(
                outcome,
                RecoveryOutcome::Accepted { .. }
                    | RecoveryOutcome::Replayed
                    | RecoveryOutcome::Throttled { .. }
                    | RecoveryOutcome::Busy { .. }
            ),
            "unexpected {outcome:?}"
        );
    }
    assert_eq!(e.verrou.remaining_recovery_codes(&e.user).await.unwrap(), 9);
}

pub async fn service_writes_its_audit_trail_to_the_store<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    e.accept(&e.code(0)).await;
    let trail = e.verrou.audit_trail(Some(&e.user), 10).await.unwrap();
    let names: Vec<_> = trail.iter().map(|event| event.kind.name()).collect();
    assert_eq!(
        names,
        [
            "totp_accepted",
            "totp_enrollment_confirmed",
            "totp_enrollment_started"
        ]
    );
}

/// An office behind one address: many users sign in with good codes from it. Successes are no
/// failures of the address, which stays open all day; a wrong guess from it still counts.
pub async fn service_successes_never_throttle_their_address<S: Store>(store: S) {
    let mut address_policy = ThrottlePolicy::ADDRESS_DEFAULT;
    address_policy.free_failures = 2;
    address_policy.lock_after = 3;
    let cfg = config()
        .with_address_throttle(Some(address_policy))
        .unwrap();
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store, cfg).with_clock(clock.clone());
    let address: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let office = ClientContext::from_addr(address);
    let mut staff = Vec::new();
    for i in 0..8 {
        let who = user(&format!("staff-{i}"));
        let secret = enrol(&verrou, &who).await;
        staff.push((who, secret));
    }
    clock.advance(Duration::from_secs(30));
    let now = clock.now().unwrap();
    for (who, secret) in &staff {
        let code = insecure_code_at(secret, TotpParams::DEFAULT, now);
        let outcome = verrou.verify_totp(who, &code, &office).await.unwrap();
        assert!(matches!(outcome, TotpOutcome::Accepted(_)), "{outcome:?}");
    }
    let key = ThrottleKey::for_address(address);
    assert_eq!(verrou.store().throttle(&key).await.unwrap().failures, 0);
    let wrong = verrou
        .verify_totp(&staff[0].0, "000000", &office)
        .await
        .unwrap();
    assert_eq!(wrong, TotpOutcome::Invalid);
    assert_eq!(verrou.store().throttle(&key).await.unwrap().failures, 1);
}
