//! Recovery codes: attacks and rules, on the service over the in-memory store. (Store races
//! live in the conformance suite.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub
)]

use std::sync::Arc;
use std::time::Duration;

use crate::support::{at, config, enrol, enrolled, user, Enrolled, START};
use secrecy::ExposeSecret;
use verrou::recovery::{Lookup, MalformedRecoveryCode, StoredHashError};
use verrou::store::backend::{RecoveryCodeRecord, ThrottleKey};
use verrou::store::{MemoryStore, Store};
use verrou::testing::{insecure_code_at, insecure_recovery_codes, InsecureManualClock};
use verrou::{
    AuditKind, ClientContext, CryptoError, Error, RecoveryCodesOutcome, RecoveryOutcome,
    SecondFactorMethod, TotpOutcome, TotpParams, Verrou, VerrouConfig,
};

fn ctx() -> ClientContext {
    ClientContext::unknown()
}

/// An enrolled user with a fresh set of recovery codes (display form).
async fn with_codes(config: VerrouConfig) -> (Enrolled<MemoryStore>, Vec<String>) {
    let e = enrolled(MemoryStore::new(), config).await;
    let codes = e.recovery_codes().await;
    (e, codes)
}

async fn recover(e: &Enrolled<MemoryStore>, code: &str) -> RecoveryOutcome {
    e.verrou
        .verify_recovery_code(&e.user, code, &ctx())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_set_of_ten_works_once_each() {
    let (e, codes) = with_codes(config()).await;
    assert_eq!(codes.len(), 10);
    assert_eq!(
        e.verrou.remaining_recovery_codes(&e.user).await.unwrap(),
        10
    );
    // Typed loosely: lowercase, spaces instead of hyphens.
    let typed = codes[0].to_lowercase().replace('-', " ");
    match recover(&e, &typed).await {
        RecoveryOutcome::Accepted { remaining, proof } => {
            assert_eq!(remaining, 9);
            assert_eq!(proof.method(), SecondFactorMethod::RecoveryCode);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.verrou.remaining_recovery_codes(&e.user).await.unwrap(), 9);
    assert!(matches!(
        recover(&e, &codes[1]).await,
        RecoveryOutcome::Accepted { remaining: 8, .. }
    ));
}

#[tokio::test]
async fn attack_recovery_code_reuse() {
    let (e, codes) = with_codes(config()).await;
    let (verrou, sink) = e.audited();
    assert!(matches!(
        verrou
            .verify_recovery_code(&e.user, &codes[2], &ctx())
            .await
            .unwrap(),
        RecoveryOutcome::Accepted { .. }
    ));
    assert_eq!(
        verrou
            .verify_recovery_code(&e.user, &codes[2], &ctx())
            .await
            .unwrap(),
        RecoveryOutcome::Replayed
    );
    let kinds: Vec<_> = sink.events().into_iter().map(|event| event.kind).collect();
    assert!(kinds.contains(&AuditKind::RecoveryCodeUsed { remaining: 9 }));
    assert!(
        kinds.contains(&AuditKind::RecoveryCodeReplayed),
        "a reused code is flagged: {kinds:?}"
    );
}

#[tokio::test]
async fn one_argon2_verification_per_attempt_and_none_for_malformed_input() {
    let (e, codes) = with_codes(config()).await;
    let key = ThrottleKey::Account(&e.user);
    let before_state = e.verrou.store().throttle(&key).await.unwrap();
    let runs = e.verrou.argon2_runs();
    for (input, reason) in [
        ("", MalformedRecoveryCode::WrongLength),
        ("7K3M-Q9XD-2HJW", MalformedRecoveryCode::WrongLength),
        (
            "7K3M-Q9XD-2HJW-R4TU",
            MalformedRecoveryCode::InvalidCharacter,
        ),
        (
            "7K3M-Q9XD-2HJW-R4T!",
            MalformedRecoveryCode::InvalidCharacter,
        ),
        (
            "７K3M-Q9XD-2HJW-R4T0",
            MalformedRecoveryCode::InvalidCharacter,
        ),
    ] {
        assert_eq!(
            recover(&e, input).await,
            RecoveryOutcome::Malformed(reason),
            "{input:?}"
        );
    }
    let oversize = "A".repeat(1 << 20);
    assert_eq!(
        recover(&e, &oversize).await,
        RecoveryOutcome::Malformed(MalformedRecoveryCode::Oversize)
    );
    assert_eq!(
        e.verrou.argon2_runs(),
        runs,
        "malformed input never reaches argon2"
    );
    assert_eq!(
        e.verrou.store().throttle(&key).await.unwrap(),
        before_state,
        "nor changes state"
    );

    // Well-formed attempts: exactly one argon2 run each, whether the lookup exists or not,
    // with ten codes stored.
    let mut wrong_secret = codes[4].clone();
    wrong_secret.replace_range(
        18..19,
        if wrong_secret.ends_with('0') {
            "1"
        } else {
            "0"
        },
    );
    assert_eq!(recover(&e, &wrong_secret).await, RecoveryOutcome::Invalid);
    assert_eq!(e.verrou.argon2_runs(), runs + 1);
    assert_eq!(
        recover(&e, "ZZZZ-ZZZZ-ZZZZ-ZZZZ").await,
        RecoveryOutcome::Invalid
    );
    assert_eq!(e.verrou.argon2_runs(), runs + 2);
    e.clock.advance(Duration::from_secs(60));
    assert!(matches!(
        recover(&e, &codes[4]).await,
        RecoveryOutcome::Accepted { .. }
    ));
    assert_eq!(e.verrou.argon2_runs(), runs + 3);
}

#[tokio::test]
async fn recovery_failures_share_the_totp_throttle() {
    let (e, _codes) = with_codes(config()).await;
    for _ in 0..2 {
        assert_eq!(
            recover(&e, "ZZZZ-ZZZZ-ZZZZ-ZZZZ").await,
            RecoveryOutcome::Invalid
        );
    }
    // A wrong TOTP code is the third failure on the same counter...
    let valid = e.code(1);
    let wrong = format!("{:06}", (valid.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(e.verify(&wrong).await, TotpOutcome::Invalid);
    // ...so both paths are now throttled.
    assert!(matches!(
        recover(&e, "ZZZZ-ZZZZ-ZZZZ-ZZZZ").await,
        RecoveryOutcome::Throttled { .. }
    ));
    assert!(matches!(
        e.verify(&valid).await,
        TotpOutcome::Throttled { .. }
    ));
}

#[tokio::test]
async fn regeneration_replaces_the_set_and_needs_a_fresh_second_factor() {
    let (e, old) = with_codes(config()).await;
    let proof = e.accept(&e.code(1)).await.proof;
    // A second proof, kept unused while it goes stale.
    e.advance_steps(2);
    let kept = e.accept(&e.code(0)).await.proof;
    let new = insecure_recovery_codes(&e.verrou, proof)
        .await
        .unwrap()
        .expect("fresh proof refused");
    for code in &old {
        assert_eq!(
            recover(&e, code).await,
            RecoveryOutcome::Invalid,
            "old codes stop at once"
        );
        e.clock.advance(Duration::from_secs(3600));
    }
    let new_code = new[0].clone();
    assert!(matches!(
        recover(&e, &new_code).await,
        RecoveryOutcome::Accepted { .. }
    ));
    // The kept proof is now hours old: regeneration asks for a new second factor.
    let again = e
        .verrou
        .generate_recovery_codes(kept, &ctx())
        .await
        .unwrap();
    assert!(matches!(again, RecoveryCodesOutcome::StepUpRequired));
}

#[tokio::test]
async fn low_codes_are_audited() {
    let (e, codes) = with_codes(config().with_recovery_set_size(3).unwrap()).await;
    let (verrou, sink) = e.audited();
    assert_eq!(codes.len(), 3);
    let _ = verrou
        .verify_recovery_code(&e.user, &codes[0], &ctx())
        .await
        .unwrap();
    let kinds: Vec<_> = sink.events().into_iter().map(|event| event.kind).collect();
    assert!(
        kinds.contains(&AuditKind::RecoveryCodesLow { remaining: 2 }),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn attack_tampered_stored_hash_is_refused_without_hashing() {
    let (e, codes) = with_codes(config()).await;
    let lookup = Lookup::parse(&codes[0][..4]).unwrap();
    let tampered = RecoveryCodeRecord {
        lookup,
        phc: "$argon2id$v=19$m=4194304,t=4000000000,p=1$c2FsdHNhbHQ$YpiIdIdI/cLsZtN2rspHbD7N8tMp3TIx9DpgZfF0cVo".into(),
        used: false,
    };
    e.verrou
        .store()
        .replace_recovery_codes(&e.user, vec![tampered])
        .await
        .unwrap();
    // Had verrou used these parameters, this would try to allocate 4 GiB for 4 billion
    // passes; it answers with a typed error at once instead.
    let err = e
        .verrou
        .verify_recovery_code(&e.user, &codes[0], &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Crypto(CryptoError::StoredHash(StoredHashError::Parameters))
        ),
        "{err:?}"
    );
}

/// Twelve users' valid codes arrive at once on a service allowed one argon2 hashing at a
/// time and two admitted attempts: the excess is refused as `Busy` (checked nothing), the
/// admitted ones succeed, and nothing waits without bound.
#[tokio::test]
async fn a_burst_beyond_the_argon2_limit_is_refused_not_queued() {
    let cfg = config()
        .with_argon2_limits(1, 2)
        .unwrap()
        .with_recovery_set_size(1)
        .unwrap();
    let clock = InsecureManualClock::new(at(START));
    let verrou = Arc::new(Verrou::new(MemoryStore::new(), cfg).with_clock(clock.clone()));
    let mut users = Vec::new();
    for n in 0..12 {
        let who = user(&format!("user-{n}"));
        let secret = enrol(&verrou, &who).await;
        users.push((who, secret));
    }
    clock.advance(Duration::from_secs(30));
    let mut attempts = Vec::new();
    for (who, secret) in &users {
        let code = insecure_code_at(secret, TotpParams::DEFAULT, at(START + 30));
        let TotpOutcome::Accepted(accepted) = verrou.verify_totp(who, &code, &ctx()).await.unwrap()
        else {
            panic!("code refused")
        };
        let codes = insecure_recovery_codes(&verrou, accepted.proof)
            .await
            .unwrap()
            .expect("fresh proof refused");
        attempts.push((who.clone(), codes[0].clone()));
    }
    let runs = verrou.argon2_runs();
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(who, code)| {
            let verrou = verrou.clone();
            tokio::spawn(async move {
                verrou
                    .verify_recovery_code(&who, &code, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut accepted, mut busy) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            RecoveryOutcome::Accepted { .. } => accepted += 1,
            RecoveryOutcome::Busy { .. } => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted + busy, 12);
    assert!(
        accepted >= 1 && busy >= 1,
        "accepted {accepted}, busy {busy}"
    );
    assert_eq!(
        verrou.argon2_runs(),
        runs + accepted,
        "refused attempts hashed nothing"
    );
}

/// An attacker keeps the argon2 queue full with attempts on another account: the victim's
/// attempts meanwhile are refused as `Busy` before they are counted, so however many arrive,
/// the victim's failure count stays at zero and their valid code still works after. (The
/// attacker's own attempts were counted, on the accounts they target.)
#[tokio::test]
async fn attack_a_full_argon2_queue_costs_the_victim_nothing() {
    let cfg = config().with_argon2_limits(1, 1).unwrap();
    let (e, codes) = with_codes(cfg).await;
    let mallory = user("mallory");
    let mallory_secret = enrol(&e.verrou, &mallory).await;
    e.advance_steps(1);
    let proof = match e
        .verrou
        .verify_totp(
            &mallory,
            &insecure_code_at(
                &mallory_secret,
                TotpParams::DEFAULT,
                verrou::Clock::now(&e.clock).unwrap(),
            ),
            &ctx(),
        )
        .await
        .unwrap()
    {
        TotpOutcome::Accepted(accepted) => accepted.proof,
        other => panic!("{other:?}"),
    };
    let mallory_codes = insecure_recovery_codes(&e.verrou, proof)
        .await
        .unwrap()
        .unwrap();
    let wrong = format!("{}-0000-0000-0000", &mallory_codes[0][..4]);
    let victim = ThrottleKey::Account(&e.user);
    for _ in 0..12 {
        // The attacker's attempt takes the only slot and holds it while argon2 runs.
        let filler = {
            let (verrou, wrong) = (e.verrou.clone(), wrong.clone());
            let mallory = mallory.clone();
            tokio::spawn(async move {
                verrou
                    .verify_recovery_code(&mallory, &wrong, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        };
        tokio::task::yield_now().await;
        let outcome = recover(&e, &codes[1]).await;
        assert!(
            matches!(outcome, RecoveryOutcome::Busy { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            e.verrou.store().throttle(&victim).await.unwrap().failures,
            0,
            "a Busy refusal was counted against the victim"
        );
        assert_eq!(filler.await.unwrap(), RecoveryOutcome::Invalid);
        e.verrou.lift_lock(&mallory).await.unwrap();
    }
    assert!(matches!(
        recover(&e, &codes[1]).await,
        RecoveryOutcome::Accepted { .. }
    ));
}

/// Clients that give up mid-request (the portal drops the request future) must not free
/// argon2 capacity while their hashing still runs: otherwise a stream of abandoned requests
/// gets past the limit and its memory bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_abandoned_requests_cannot_exceed_the_argon2_limit() {
    let cfg = config().with_argon2_limits(1, 64).unwrap();
    let (e, codes) = with_codes(cfg).await;
    for round in 0..8u64 {
        let mut handles = Vec::new();
        for code in codes.iter().take(6) {
            let (verrou, who, code) = (e.verrou.clone(), e.user.clone(), code.clone());
            handles.push(tokio::spawn(async move {
                let _ = verrou
                    .verify_recovery_code(&who, &code, &ClientContext::unknown())
                    .await;
            }));
        }
        // Give up on them at various points of their hashing.
        tokio::time::sleep(Duration::from_millis(2 + 3 * round)).await;
        for handle in &handles {
            handle.abort();
        }
        e.clock.advance(Duration::from_secs(3600));
    }
    // Let any hashing still running finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        e.verrou.argon2_peak_concurrency(),
        1,
        "more than one argon2 hashing ran at once"
    );
}

#[tokio::test]
async fn an_operator_reset_also_voids_the_recovery_codes() {
    let (e, codes) = with_codes(config()).await;
    assert!(e.verrou.remove_totp_factor(&e.user).await.unwrap());
    assert_eq!(e.verrou.remaining_recovery_codes(&e.user).await.unwrap(), 0);
    assert_eq!(recover(&e, &codes[0]).await, RecoveryOutcome::Invalid);
}

#[test]
fn recovery_settings_are_validated() {
    assert!(config().with_recovery_set_size(0).is_err());
    assert!(config().with_recovery_set_size(21).is_err());
    assert!(config().with_argon2_limits(0, 4).is_err());
    assert!(config().with_argon2_limits(4, 2).is_err());
    let mut weak = verrou::recovery::HashParams::OWASP;
    weak.memory_kib = 1024;
    assert!(config().with_recovery_hash(weak).is_err());
}

#[tokio::test]
async fn recovery_codes_never_appear_in_debug_or_events() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let (verrou, sink) = e.audited();
    let proof = match verrou
        .verify_totp(&e.user, &e.code(0), &ctx())
        .await
        .unwrap()
    {
        TotpOutcome::Accepted(accepted) => accepted.proof,
        other => panic!("{other:?}"),
    };
    let outcome = verrou.generate_recovery_codes(proof, &ctx()).await.unwrap();
    let RecoveryCodesOutcome::Generated(set) = &outcome else {
        panic!()
    };
    let codes: Vec<String> = set
        .codes()
        .iter()
        .map(|c| c.expose_secret().to_owned())
        .collect();
    let used = verrou
        .verify_recovery_code(&e.user, &codes[0], &ctx())
        .await
        .unwrap();
    let shown = format!(
        "{outcome:?} {used:?} {:?} {:?}",
        sink.events(),
        verrou.store()
    );
    for code in &codes {
        assert!(!shown.contains(code.as_str()), "{code} leaked");
        assert!(!shown.contains(&code[5..]), "secret part of {code} leaked");
    }
}
