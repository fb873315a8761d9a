//! Attacks written as tests, on the service over the in-memory store. (The store-generic
//! races live in the conformance suite and run on every backend.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub
)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{at, config, enrol, enrolled, start_enrollment, user, START};
use secrecy::ExposeSecret;
use verrou::audit::MemoryAuditSink;
use verrou::lockout::ThrottlePolicy;
use verrou::store::backend::ThrottleKey;
use verrou::store::{MemoryStore, Store};
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::totp::MalformedCode;
use verrou::{
    ApiMisuse, AuditKind, ClientContext, EnrollmentOutcome, Error, ReenrollmentOutcome,
    TotpOutcome, TotpParams, TotpSecret, Verrou,
};

fn ctx() -> ClientContext {
    ClientContext::unknown()
}

fn wrong(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    )
}

#[tokio::test]
async fn attack_totp_replay_same_step() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let code = e.code(0);
    e.accept(&code).await;
    // The shoulder-surfer types the same code a few seconds later, still inside the window.
    e.clock.advance(Duration::from_secs(20));
    assert_eq!(e.verify(&code).await, TotpOutcome::Replayed);
    // The replay counts as a failure, like a wrong code.
    let key = ThrottleKey::Account(&e.user);
    assert_eq!(e.verrou.store().throttle(&key).await.unwrap().failures, 1);
    // And the next step's code still works for the user.
    e.advance_steps(1);
    e.accept(&e.code(0)).await;
}

#[tokio::test]
async fn attack_totp_replay_of_the_enrolment_code() {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), config()).with_clock(clock.clone());
    let alice = user("alice");
    let secret = enrol(&verrou, &alice).await;
    let code = insecure_code_at(&secret, TotpParams::DEFAULT, at(START));
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        verrou.verify_totp(&alice, &code, &ctx()).await.unwrap(),
        TotpOutcome::Replayed
    );
}

#[tokio::test]
async fn attack_guessing_hits_backoff_then_lock_then_expiry() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let verrou = &e.verrou;
    let bad = wrong(&e.code(0));
    for _ in 0..3 {
        assert_eq!(
            verrou.verify_totp(&e.user, &bad, &ctx()).await.unwrap(),
            TotpOutcome::Invalid
        );
    }
    // 3 failures: 1 s backoff. Even the right code is not checked.
    assert_eq!(
        verrou
            .verify_totp(&e.user, &e.code(0), &ctx())
            .await
            .unwrap(),
        TotpOutcome::Throttled {
            retry_after: Duration::from_secs(1)
        }
    );
    // Keep guessing as fast as allowed up to the lock.
    let mut delay = 1;
    for _ in 3..10 {
        e.clock.advance(Duration::from_secs(delay));
        assert_eq!(
            verrou.verify_totp(&e.user, &bad, &ctx()).await.unwrap(),
            TotpOutcome::Invalid
        );
        delay *= 2;
    }
    let now = verrou::Clock::now(&e.clock).unwrap();
    let until = now.saturating_add(Duration::from_secs(900));
    assert_eq!(
        verrou
            .verify_totp(&e.user, &e.code(0), &ctx())
            .await
            .unwrap(),
        TotpOutcome::Locked { until: Some(until) }
    );
    e.clock.advance(Duration::from_secs(899));
    assert!(matches!(
        verrou
            .verify_totp(&e.user, &e.code(0), &ctx())
            .await
            .unwrap(),
        TotpOutcome::Locked { .. }
    ));
    // The lock expires; a success resets the count.
    e.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        verrou
            .verify_totp(&e.user, &e.code(0), &ctx())
            .await
            .unwrap(),
        TotpOutcome::Accepted(_)
    ));
    let record = verrou
        .store()
        .throttle(&ThrottleKey::Account(&e.user))
        .await
        .unwrap();
    assert_eq!(record.failures, 0);
}

#[tokio::test]
async fn attack_lock_is_permanent_at_the_cap_until_an_operator_lifts_it() {
    let sink = Arc::new(MemoryAuditSink::new());
    let clock = InsecureManualClock::new(at(START));
    let mut policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    policy.free_failures = 1;
    policy.lock_after = 2;
    policy.permanent_lock_after = Some(4);
    let cfg = config().with_account_throttle(policy).unwrap();
    let e = enrolled(MemoryStore::new(), cfg).await;
    let verrou = Verrou::new(
        e.verrou.store().clone(),
        config().with_account_throttle(policy).unwrap(),
    )
    .with_clock(clock.clone())
    .with_audit_sink(sink.clone());
    clock.set_unix_seconds(START + 60);
    let bad = "000000";
    let mut checked = 0;
    for _ in 0..40 {
        match verrou.verify_totp(&e.user, bad, &ctx()).await.unwrap() {
            TotpOutcome::Invalid => checked += 1,
            TotpOutcome::Locked { until: None } => break,
            _ => {}
        }
        clock.advance(Duration::from_secs(24 * 3600));
    }
    assert_eq!(
        checked, 4,
        "exactly permanent_lock_after guesses, then the lock holds"
    );
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        verrou.verify_totp(&e.user, bad, &ctx()).await.unwrap(),
        TotpOutcome::Locked { until: None }
    );
    verrou.lift_lock(&e.user).await.unwrap();
    let code = insecure_code_at(
        &e.secret,
        TotpParams::DEFAULT,
        verrou::Clock::now(&clock).unwrap(),
    );
    assert!(matches!(
        verrou.verify_totp(&e.user, &code, &ctx()).await.unwrap(),
        TotpOutcome::Accepted(_)
    ));
    let kinds: Vec<_> = sink
        .events()
        .into_iter()
        .map(|event| event.kind.name())
        .collect();
    assert!(kinds.contains(&"lock_engaged"), "{kinds:?}");
    assert!(kinds.contains(&"lock_lifted"), "{kinds:?}");
}

#[tokio::test]
async fn malformed_input_changes_nothing_and_is_not_counted() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let key = ThrottleKey::Account(&e.user);
    let before = e.verrou.store().throttle(&key).await.unwrap();
    let factor_before = e.verrou.store().active_totp(&e.user).await.unwrap();
    let long = "9".repeat(1 << 16);
    let cases: [(&str, MalformedCode); 8] = [
        ("+12345", MalformedCode::InvalidCharacter),
        ("١٢٣٤٥٦", MalformedCode::InvalidCharacter),
        ("１２３４５６", MalformedCode::InvalidCharacter),
        ("123\t456", MalformedCode::InvalidCharacter),
        ("12345\u{0}", MalformedCode::InvalidCharacter),
        ("5924", MalformedCode::WrongLength),
        ("1234567", MalformedCode::WrongLength),
        (&long, MalformedCode::Oversize),
    ];
    for _ in 0..20 {
        for (input, reason) in &cases {
            assert_eq!(
                e.verify(input).await,
                TotpOutcome::Malformed(*reason),
                "{:?}",
                input.get(..12)
            );
        }
    }
    assert_eq!(e.verrou.store().throttle(&key).await.unwrap(), before);
    assert_eq!(
        e.verrou.store().active_totp(&e.user).await.unwrap(),
        factor_before
    );
    e.accept(&e.code(0)).await;
}

#[tokio::test]
async fn spaces_in_a_code_are_accepted() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let code = e.code(0);
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    e.accept(&spaced).await;
}

#[tokio::test]
async fn drift_is_reported_and_the_window_is_bounded() {
    let e = enrolled(MemoryStore::new(), config()).await;
    // One step past the confirming code, so the previous step is unused.
    e.advance_steps(1);
    assert_eq!(e.verify(&e.code(2)).await, TotpOutcome::Invalid);
    match e
        .verrou
        .verify_totp(&e.user, &e.code(-1), &ctx())
        .await
        .unwrap()
    {
        TotpOutcome::Accepted(accepted) => assert_eq!(accepted.drift, -1),
        other => panic!("{other:?}"),
    }
    e.advance_steps(3);
    match e
        .verrou
        .verify_totp(&e.user, &e.code(1), &ctx())
        .await
        .unwrap()
    {
        TotpOutcome::Accepted(accepted) => assert_eq!(accepted.drift, 1),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn attack_guessing_from_one_address_across_accounts() {
    let store = MemoryStore::new();
    let mut address_policy = ThrottlePolicy::ADDRESS_DEFAULT;
    address_policy.free_failures = 2;
    address_policy.lock_after = 5;
    let cfg = config()
        .with_address_throttle(Some(address_policy))
        .unwrap();
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store, cfg).with_clock(clock.clone());
    let attacker = ClientContext::from_addr("2001:db8:aa:bb::1".parse::<IpAddr>().unwrap());
    let neighbour = ClientContext::from_addr("2001:db8:aa:bb:ffff::2".parse::<IpAddr>().unwrap());
    let mut users = Vec::new();
    for name in ["u1", "u2", "u3", "u4"] {
        let who = user(name);
        enrol(&verrou, &who).await;
        users.push(who);
    }
    clock.advance(Duration::from_secs(30));
    // One wrong guess per account, rotating accounts: each account sees only one failure,
    // but the address counter stops the third.
    assert_eq!(
        verrou
            .verify_totp(&users[0], "000000", &attacker)
            .await
            .unwrap(),
        TotpOutcome::Invalid
    );
    assert_eq!(
        verrou
            .verify_totp(&users[1], "000000", &attacker)
            .await
            .unwrap(),
        TotpOutcome::Invalid
    );
    assert!(matches!(
        verrou
            .verify_totp(&users[2], "000000", &attacker)
            .await
            .unwrap(),
        TotpOutcome::Throttled { .. }
    ));
    // Another address in the same IPv6 /64 shares the counter.
    assert!(matches!(
        verrou
            .verify_totp(&users[3], "000000", &neighbour)
            .await
            .unwrap(),
        TotpOutcome::Throttled { .. }
    ));
    // Another client elsewhere is unaffected.
    let elsewhere = ClientContext::from_addr("192.0.2.50".parse::<IpAddr>().unwrap());
    assert_eq!(
        verrou
            .verify_totp(&users[3], "000000", &elsewhere)
            .await
            .unwrap(),
        TotpOutcome::Invalid
    );
}

/// An attacker holding a whole /48 rotates through its /64s: with the default /64 buckets
/// each /64 is a fresh counter, with the prefix set to 48 they all share one. Other prefixes
/// stay unaffected either way.
#[tokio::test]
async fn attack_rotating_through_an_ipv6_48_meets_a_48_bucket() {
    let mut address_policy = ThrottlePolicy::ADDRESS_DEFAULT;
    address_policy.free_failures = 2;
    address_policy.lock_after = 5;
    let from = |text: &str| ClientContext::from_addr(text.parse::<IpAddr>().unwrap());
    let mut outcomes = Vec::new();
    for prefix in [64, 48] {
        let cfg = config()
            .with_address_throttle(Some(address_policy))
            .unwrap()
            .with_ipv6_throttle_prefix(prefix)
            .unwrap();
        let clock = InsecureManualClock::new(at(START));
        let verrou = Verrou::new(MemoryStore::new(), cfg).with_clock(clock.clone());
        let mut users = Vec::new();
        for n in 0..6 {
            let who = user(&format!("u{n}"));
            enrol(&verrou, &who).await;
            users.push(who);
        }
        clock.advance(Duration::from_secs(30));
        // One guess per account, each from another /64 of 2001:db8:aa::/48.
        let mut throttled = 0;
        for (n, who) in users.iter().take(5).enumerate() {
            let outcome = verrou
                .verify_totp(who, "000000", &from(&format!("2001:db8:aa:{n}::1")))
                .await
                .unwrap();
            throttled += usize::from(matches!(outcome, TotpOutcome::Throttled { .. }));
        }
        let elsewhere = verrou
            .verify_totp(&users[5], "000000", &from("2001:db8:bb::1"))
            .await
            .unwrap();
        assert_eq!(elsewhere, TotpOutcome::Invalid, "/{prefix}");
        outcomes.push(throttled);
    }
    assert_eq!(
        outcomes,
        [0, 3],
        "throttled guesses with /64 and /48 buckets"
    );
    for bad in [0, 31, 129] {
        assert!(config().with_ipv6_throttle_prefix(bad).is_err());
    }
}

#[tokio::test]
async fn enrolment_is_pending_until_confirmed_and_expires() {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), config()).with_clock(clock.clone());
    let alice = user("alice");
    let (offer, secret) = start_enrollment(&verrou, &alice, "alice@partner.example").await;
    assert_eq!(offer.expires_at(), at(START + 600));
    assert!(offer
        .otpauth_uri()
        .expose_secret()
        .starts_with("otpauth://totp/Portail%20Partenaires:alice%40partner.example?secret="));
    assert_eq!(secret.len(), 20, "160-bit secret by default");
    // Pending: verification knows no factor yet.
    let code = insecure_code_at(&secret, TotpParams::DEFAULT, at(START));
    assert_eq!(
        verrou.verify_totp(&alice, &code, &ctx()).await.unwrap(),
        TotpOutcome::NotEnrolled
    );
    assert!(!verrou.has_active_totp(&alice).await.unwrap());
    assert_eq!(
        verrou
            .finish_totp_enrollment(&alice, &wrong(&code), &ctx())
            .await
            .unwrap(),
        EnrollmentOutcome::Invalid
    );
    clock.advance(Duration::from_secs(600));
    let late = insecure_code_at(&secret, TotpParams::DEFAULT, at(START + 600));
    assert_eq!(
        verrou
            .finish_totp_enrollment(&alice, &late, &ctx())
            .await
            .unwrap(),
        EnrollmentOutcome::Expired
    );
    assert!(!verrou.has_active_totp(&alice).await.unwrap());
    assert_eq!(
        verrou
            .finish_totp_enrollment(&user("bob"), &late, &ctx())
            .await
            .unwrap(),
        EnrollmentOutcome::NotPending
    );
}

#[tokio::test]
async fn attack_reenrolment_without_a_fresh_second_factor() {
    let e = enrolled(MemoryStore::new(), config()).await;
    // A password-only attacker tries the first-enrolment path: refused with a typed error.
    let err = e
        .verrou
        .start_totp_enrollment(&e.user, "attacker", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Misuse(ApiMisuse::FactorAlreadyActive)),
        "{err:?}"
    );
    // A proof older than 5 minutes is not enough.
    let accepted = e.accept(&e.code(0)).await;
    e.clock.advance(Duration::from_secs(301));
    let stale = e
        .verrou
        .start_totp_reenrollment(accepted.proof, "alice", &ctx())
        .await
        .unwrap();
    assert!(matches!(stale, ReenrollmentOutcome::StepUpRequired));
}

#[tokio::test]
async fn reenrolment_keeps_the_old_factor_until_the_new_one_is_confirmed() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let accepted = e.accept(&e.code(0)).await;
    let ReenrollmentOutcome::Started(offer) = e
        .verrou
        .start_totp_reenrollment(accepted.proof, "alice (new phone)", &ctx())
        .await
        .unwrap()
    else {
        panic!("fresh proof refused")
    };
    let new_secret = TotpSecret::from_base32(offer.secret_base32().expose_secret()).unwrap();
    assert_ne!(new_secret, e.secret);
    // The old factor still works while the new one is pending.
    e.advance_steps(1);
    e.accept(&e.code(0)).await;
    // Confirm the new one: from now on only the new secret works.
    e.advance_steps(1);
    let now = verrou::Clock::now(&e.clock).unwrap();
    let new_code = insecure_code_at(&new_secret, TotpParams::DEFAULT, now);
    assert!(matches!(
        e.verrou
            .finish_totp_reenrollment(&e.user, &new_code, None, &ctx())
            .await
            .unwrap(),
        EnrollmentOutcome::Confirmed { .. }
    ));
    e.advance_steps(1);
    assert_eq!(e.verify(&e.code(0)).await, TotpOutcome::Invalid);
    let now = verrou::Clock::now(&e.clock).unwrap();
    let new_code = insecure_code_at(&new_secret, TotpParams::DEFAULT, now);
    e.accept(&new_code).await;
}

/// The race the store closes: a password-only attacker starts a *first* enrolment while
/// the victim has none, the victim then enrols and confirms, and the attacker's pending
/// factor (stored just after) must not replace the victim's.
#[tokio::test]
async fn attack_first_enrolment_cannot_replace_a_factor_confirmed_meanwhile() {
    use verrou::store::backend::{Activation, PendingTotp};
    let e = enrolled(MemoryStore::new(), config()).await;
    let store = e.verrou.store();
    let attacker_secret = TotpSecret::generate().unwrap();
    let now = verrou::Clock::now(&e.clock).unwrap();
    let attacker_pending = PendingTotp {
        id: verrou::FactorId::generate().unwrap(),
        secret: attacker_secret.clone(),
        params: TotpParams::DEFAULT,
        replaces: None, // checked "no active factor" before the victim confirmed
        created_at: now,
        expires_at: now.saturating_add(Duration::from_secs(600)),
    };
    store
        .put_pending_totp(&e.user, attacker_pending)
        .await
        .unwrap();
    let code = insecure_code_at(&attacker_secret, TotpParams::DEFAULT, now);
    assert_eq!(
        e.verrou
            .finish_totp_enrollment(&e.user, &code, &ctx())
            .await
            .unwrap(),
        EnrollmentOutcome::NotPending
    );
    e.accept(&e.code(0)).await;
    let _ = Activation::Superseded;
}

#[tokio::test]
async fn operator_removes_a_factor() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let (verrou, sink) = e.audited();
    assert!(verrou.remove_totp_factor(&e.user).await.unwrap());
    assert_eq!(
        verrou
            .verify_totp(&e.user, &e.code(0), &ctx())
            .await
            .unwrap(),
        TotpOutcome::NotEnrolled
    );
    assert!(!verrou.remove_totp_factor(&e.user).await.unwrap());
    assert_eq!(sink.events().len(), 1);
    assert_eq!(sink.events()[0].kind, AuditKind::TotpFactorRemoved);
    // Now a first enrolment is allowed again.
    assert!(verrou
        .start_totp_enrollment(&e.user, "alice", &ctx())
        .await
        .is_ok());
}

#[tokio::test]
async fn impossible_clock_is_an_error_not_a_panic() {
    let e = enrolled(MemoryStore::new(), config()).await;
    e.clock.set_unix_seconds(u64::MAX);
    let err = e
        .verrou
        .verify_totp(&e.user, "123456", &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Clock(_)), "{err:?}");
    let err = e
        .verrou
        .start_totp_enrollment(&user("bob"), "bob", &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Clock(_)), "{err:?}");
}

#[test]
fn impossible_settings_are_construction_errors() {
    assert!(verrou::VerrouConfig::new("").is_err());
    assert!(verrou::VerrouConfig::new("Bad:Issuer").is_err());
    assert!(config().with_skew(3).is_err());
    assert!(config().with_skew(2).is_ok());
    assert!(config()
        .with_pending_enrollment_ttl(Duration::ZERO)
        .is_err());
    assert!(config()
        .with_step_up_freshness(Duration::from_secs(7200))
        .is_err());
    let mut loose = ThrottlePolicy::ACCOUNT_DEFAULT;
    loose.permanent_lock_after = Some(101);
    assert!(config().with_account_throttle(loose).is_err());
    assert!(TotpParams::new(verrou::Algorithm::Sha1, 10, 30).is_err());
    assert!(TotpParams::new(verrou::Algorithm::Sha1, 6, 0).is_err());
}

#[tokio::test]
async fn every_algorithm_and_digit_count_verifies() {
    for algorithm in [
        verrou::Algorithm::Sha1,
        verrou::Algorithm::Sha256,
        verrou::Algorithm::Sha512,
    ] {
        for digits in 6..=8 {
            let params = TotpParams::new(algorithm, digits, 30).unwrap();
            let clock = InsecureManualClock::new(at(START));
            let verrou = Verrou::new(MemoryStore::new(), config().with_totp_params(params))
                .with_clock(clock.clone());
            let who = user("alice");
            let (offer, secret) = start_enrollment(&verrou, &who, "alice").await;
            let uri = offer.otpauth_uri().expose_secret().to_owned();
            assert!(
                uri.contains(&format!("algorithm={algorithm}&digits={digits}&period=30")),
                "{uri}"
            );
            let code = insecure_code_at(&secret, params, at(START));
            assert_eq!(code.len(), usize::from(digits));
            assert!(matches!(
                verrou
                    .finish_totp_enrollment(&who, &code, &ctx())
                    .await
                    .unwrap(),
                EnrollmentOutcome::Confirmed { .. }
            ));
            clock.advance(Duration::from_secs(30));
            let code = insecure_code_at(&secret, params, at(START + 30));
            assert!(
                matches!(
                    verrou.verify_totp(&who, &code, &ctx()).await.unwrap(),
                    TotpOutcome::Accepted(_)
                ),
                "{algorithm} {digits}"
            );
        }
    }
}
