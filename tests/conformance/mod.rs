//! The store conformance suite: written once, generic over [`Store`], run against every
//! backend by `store_conformance!(make_store)`, where `make_store` is an `async fn` that
//! returns a fresh, empty store.
//!
//! It checks each atomic operation, its behaviour under 32-way concurrency, and the service's
//! security properties (one acceptance per code, replay, burst throttling) over that backend.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::Barrier;
use verrou::audit::{AuditEvent, AuditKind, MemoryAuditSink};
use verrou::lockout::{Gate, ThrottlePolicy, ThrottleState};
use verrou::recovery::Lookup;
use verrou::store::backend::{
    Activation, Consumption, PendingTotp, RecoveryCodeRecord, Reservation, StepAdvance,
    ThrottleKey, TotpFactor,
};
use verrou::store::Store;
use verrou::testing::{
    insecure_code_at, insecure_enroll, insecure_recovery_codes, InsecureManualClock,
};
pub mod http;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod recovery_sets;
pub mod rotation;
pub mod sessions;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod two_handles;

#[allow(unused_imports)]
pub use self::recovery_sets::*;
#[allow(unused_imports)]
pub use self::sessions::*;

use verrou::{
    ClientContext, Clock, EnrollmentOffer, FactorId, RecoveryOutcome, Timestamp, TotpAccepted,
    TotpOutcome, TotpParams, TotpSecret, UserId, Verrou, VerrouConfig,
};

/// How many tasks race in the concurrency cases.
pub const RACERS: usize = 32;
/// A fixed, realistic start time (2026-11-23).
pub const START: u64 = 1_795_000_000;

/// A secret's raw bytes, from its Base32 form (the crate never hands them out).
pub fn secret_bytes(secret: &TotpSecret) -> Vec<u8> {
    let text = secret.to_base32();
    let alphabet = base32::Alphabet::Rfc4648 { padding: false };
    base32::decode(alphabet, text.expose_secret()).unwrap()
}

/// An audit record for a store-level step acceptance (its content is not under test there).
pub fn step_event() -> AuditEvent {
    AuditEvent::new(at(START), user("alice"), None, AuditKind::LockLifted)
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

pub fn pending(replaces: Option<FactorId>, expires_at: u64) -> PendingTotp {
    PendingTotp {
        id: FactorId::generate().unwrap(),
        secret: TotpSecret::generate().unwrap(),
        params: TotpParams::DEFAULT,
        replaces,
        created_at: at(START),
        expires_at: at(expires_at),
    }
}

/// Stores and activates a factor for `who`, returning it.
pub async fn active_factor<S: Store>(store: &S, who: &UserId, last_step: u64) -> TotpFactor {
    let p = pending(None, START + 600);
    let id = p.id;
    store.put_pending_totp(who, p).await.unwrap();
    let got = store
        .activate_pending_totp(who, id, last_step, at(START))
        .await
        .unwrap();
    assert_eq!(got, Activation::Activated);
    store.active_totp(who).await.unwrap().unwrap()
}

/// Starts `RACERS` tasks, lined up on a barrier so they really overlap, and collects their
/// results. `task(i)` builds the future of task `i`.
pub async fn race<T, F, Fut>(task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), task(i));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

// ---- store operations ---------------------------------------------------------------

pub async fn pending_is_stored_and_replaced<S: Store>(store: S) {
    let alice = user("alice");
    assert_eq!(store.pending_totp(&alice).await.unwrap(), None);
    let first = pending(None, START + 600);
    store.put_pending_totp(&alice, first.clone()).await.unwrap();
    assert_eq!(store.pending_totp(&alice).await.unwrap(), Some(first));
    let second = pending(None, START + 600);
    store
        .put_pending_totp(&alice, second.clone())
        .await
        .unwrap();
    assert_eq!(store.pending_totp(&alice).await.unwrap(), Some(second));
    assert_eq!(store.pending_totp(&user("bob")).await.unwrap(), None);
}

pub async fn activation_promotes_pending_once<S: Store>(store: S) {
    let alice = user("alice");
    let p = pending(None, START + 600);
    store.put_pending_totp(&alice, p.clone()).await.unwrap();
    assert_eq!(
        store
            .activate_pending_totp(&alice, p.id, 42, at(START + 10))
            .await
            .unwrap(),
        Activation::Activated
    );
    let active = store.active_totp(&alice).await.unwrap().unwrap();
    assert_eq!(active.id, p.id);
    assert_eq!(active.secret, p.secret);
    assert_eq!(active.params, p.params);
    assert_eq!(active.last_step, 42);
    assert_eq!(active.activated_at, at(START + 10));
    assert_eq!(store.pending_totp(&alice).await.unwrap(), None);
    assert_eq!(
        store
            .activate_pending_totp(&alice, p.id, 43, at(START + 11))
            .await
            .unwrap(),
        Activation::NotPending
    );
}

pub async fn activation_refuses_wrong_id_and_expired<S: Store>(store: S) {
    let alice = user("alice");
    let p = pending(None, START + 600);
    store.put_pending_totp(&alice, p.clone()).await.unwrap();
    let other = FactorId::generate().unwrap();
    assert_eq!(
        store
            .activate_pending_totp(&alice, other, 1, at(START))
            .await
            .unwrap(),
        Activation::NotPending
    );
    assert_eq!(
        store
            .activate_pending_totp(&alice, p.id, 1, at(START + 600))
            .await
            .unwrap(),
        Activation::Expired
    );
    assert_eq!(store.active_totp(&alice).await.unwrap(), None);
}

/// A pending factor meant to replace factor A cannot be activated once B replaced A (and a
/// first-enrolment pending factor cannot replace a factor that appeared meanwhile).
pub async fn activation_refuses_superseded<S: Store>(store: S) {
    let alice = user("alice");
    let stale_first = pending(None, START + 600);
    store
        .put_pending_totp(&alice, stale_first.clone())
        .await
        .unwrap();
    let a = active_factor(&store, &alice, 1).await; // replaces the pending one
    assert_eq!(
        store
            .activate_pending_totp(&alice, stale_first.id, 2, at(START))
            .await
            .unwrap(),
        Activation::NotPending
    );
    // First-enrolment pending put after A became active: superseded.
    let late_first = pending(None, START + 600);
    store
        .put_pending_totp(&alice, late_first.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .activate_pending_totp(&alice, late_first.id, 2, at(START))
            .await
            .unwrap(),
        Activation::Superseded
    );
    assert_eq!(store.pending_totp(&alice).await.unwrap(), None);
    assert_eq!(store.active_totp(&alice).await.unwrap().unwrap().id, a.id);
    // Re-enrolment against A works and replaces A.
    let re = pending(Some(a.id), START + 600);
    store.put_pending_totp(&alice, re.clone()).await.unwrap();
    assert_eq!(
        store
            .activate_pending_totp(&alice, re.id, 9, at(START))
            .await
            .unwrap(),
        Activation::Activated
    );
    let now_active = store.active_totp(&alice).await.unwrap().unwrap();
    assert_eq!(now_active.id, re.id);
    assert_eq!(now_active.last_step, 9);
}

pub async fn concurrent_activation_succeeds_once<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let p = pending(None, START + 600);
    store.put_pending_totp(&alice, p.clone()).await.unwrap();
    let results = race(|i| {
        let (store, alice) = (store.clone(), alice.clone());
        async move {
            let step = 100 + i as u64;
            store
                .activate_pending_totp(&alice, p.id, step, at(START))
                .await
                .unwrap()
        }
    })
    .await;
    let activated = results
        .iter()
        .filter(|r| **r == Activation::Activated)
        .count();
    assert_eq!(activated, 1);
}

pub async fn step_advances_only_forward<S: Store>(store: S) {
    let alice = user("alice");
    let factor = active_factor(&store, &alice, 10).await;
    let sequence = [
        (10, StepAdvance::AlreadyUsed),
        (9, StepAdvance::AlreadyUsed),
        (11, StepAdvance::Advanced),
        (11, StepAdvance::AlreadyUsed),
        (15, StepAdvance::Advanced),
        (12, StepAdvance::AlreadyUsed),
    ];
    for (step, expected) in sequence {
        let got = store
            .accept_totp_step(&alice, factor.id, step, step_event())
            .await
            .unwrap();
        assert_eq!(got, expected, "step {step}");
    }
    let last = store.active_totp(&alice).await.unwrap().unwrap().last_step;
    assert_eq!(last, 15);
    let other = FactorId::generate().unwrap();
    assert_eq!(
        store
            .accept_totp_step(&alice, other, 99, step_event())
            .await
            .unwrap(),
        StepAdvance::NoSuchFactor
    );
    assert_eq!(
        store
            .accept_totp_step(&user("bob"), factor.id, 99, step_event())
            .await
            .unwrap(),
        StepAdvance::NoSuchFactor
    );
    assert_eq!(
        store.active_totp(&alice).await.unwrap().unwrap().last_step,
        15
    );
    // The audit record goes in with each advance, and only then.
    assert_eq!(store.audit_trail(None, 100).await.unwrap().len(), 2);
}

/// 32 tasks record the same step: exactly one `Advanced`, the others `AlreadyUsed`, and one
/// audit record.
pub async fn concurrent_same_step_advances_once<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let factor = active_factor(&*store, &alice, 10).await;
    let results = race(|_| {
        let (store, alice) = (store.clone(), alice.clone());
        async move {
            store
                .accept_totp_step(&alice, factor.id, 11, step_event())
                .await
                .unwrap()
        }
    })
    .await;
    let advanced = results
        .iter()
        .filter(|r| **r == StepAdvance::Advanced)
        .count();
    let used = results
        .iter()
        .filter(|r| **r == StepAdvance::AlreadyUsed)
        .count();
    assert_eq!((advanced, used), (1, RACERS - 1));
    assert_eq!(store.audit_trail(None, 100).await.unwrap().len(), 1);
}

/// Concurrent different steps: the last step ends at the maximum, never goes back.
pub async fn concurrent_steps_never_go_back<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let factor = active_factor(&*store, &alice, 0).await;
    race(|i| {
        let (store, alice) = (store.clone(), alice.clone());
        let step = 1 + (i as u64 * 7) % 32;
        async move {
            store
                .accept_totp_step(&alice, factor.id, step, step_event())
                .await
                .unwrap()
        }
    })
    .await;
    let last = store.active_totp(&alice).await.unwrap().unwrap().last_step;
    assert_eq!(last, 32);
}

pub async fn factors_are_removed<S: Store>(store: S) {
    let alice = user("alice");
    assert!(!store.remove_totp(&alice).await.unwrap());
    let factor = active_factor(&store, &alice, 1).await;
    store
        .put_pending_totp(&alice, pending(Some(factor.id), START + 600))
        .await
        .unwrap();
    assert!(store.remove_totp(&alice).await.unwrap());
    assert_eq!(store.active_totp(&alice).await.unwrap(), None);
    assert_eq!(store.pending_totp(&alice).await.unwrap(), None);
    assert_eq!(
        store
            .accept_totp_step(&alice, factor.id, 5, step_event())
            .await
            .unwrap(),
        StepAdvance::NoSuchFactor
    );
}

pub async fn throttle_counts_until_the_gate_closes<S: Store>(store: S) {
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let key = ThrottleKey::Account(&user("alice"));
    assert_eq!(
        store.throttle(&key).await.unwrap(),
        ThrottleState::default()
    );
    let now = at(START);
    for expected in 1..=3 {
        let got = store.reserve_attempt(&key, &policy, now).await.unwrap();
        assert_eq!(
            got,
            Reservation::Counted(ThrottleState {
                failures: expected,
                last_failure: now
            })
        );
    }
    // Three failures: backoff. Refused, and nothing counted.
    let refused = store.reserve_attempt(&key, &policy, now).await.unwrap();
    assert_eq!(
        refused,
        Reservation::Refused(Gate::Backoff {
            until: at(START + 1)
        })
    );
    assert_eq!(store.throttle(&key).await.unwrap().failures, 3);
    // After the backoff it opens again.
    let later = store
        .reserve_attempt(&key, &policy, at(START + 1))
        .await
        .unwrap();
    assert!(matches!(
        later,
        Reservation::Counted(ThrottleState { failures: 4, .. })
    ));
    store.clear_throttle(&key).await.unwrap();
    assert_eq!(store.throttle(&key).await.unwrap().failures, 0);
    // Clearing a counter that does not exist is fine.
    store
        .clear_throttle(&ThrottleKey::Account(&user("nobody")))
        .await
        .unwrap();
    store
        .clear_throttle(&ThrottleKey::for_address("192.0.2.1".parse().unwrap()))
        .await
        .unwrap();
}

pub async fn throttle_keys_are_independent<S: Store>(store: S) {
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let alice = ThrottleKey::Account(&user("alice"));
    let bob = ThrottleKey::Account(&user("bob"));
    let addr = ThrottleKey::for_address("192.0.2.1".parse().unwrap());
    for _ in 0..2 {
        store
            .reserve_attempt(&alice, &policy, at(START))
            .await
            .unwrap();
    }
    store
        .reserve_attempt(&addr, &policy, at(START))
        .await
        .unwrap();
    assert_eq!(store.throttle(&alice).await.unwrap().failures, 2);
    assert_eq!(store.throttle(&bob).await.unwrap().failures, 0);
    assert_eq!(store.throttle(&addr).await.unwrap().failures, 1);
    store.clear_throttle(&alice).await.unwrap();
    assert_eq!(store.throttle(&addr).await.unwrap().failures, 1);
    store.clear_throttle(&addr).await.unwrap();
    assert_eq!(store.throttle(&addr).await.unwrap().failures, 0);
}

/// A successful step also resets the account counter, in the same atomic operation; a
/// refused step leaves the counter alone.
pub async fn accepting_a_step_resets_the_account_counter<S: Store>(store: S) {
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let alice = user("alice");
    let key = ThrottleKey::Account(&alice);
    let factor = active_factor(&store, &alice, 10).await;
    for _ in 0..3 {
        store
            .reserve_attempt(&key, &policy, at(START))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .accept_totp_step(&alice, factor.id, 10, step_event())
            .await
            .unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(store.throttle(&key).await.unwrap().failures, 3);
    assert_eq!(
        store
            .accept_totp_step(&alice, factor.id, 11, step_event())
            .await
            .unwrap(),
        StepAdvance::Advanced
    );
    assert_eq!(store.throttle(&key).await.unwrap().failures, 0);
}

/// 32 tasks reserve at the same instant: exactly `free_failures` are counted, the rest
/// refused; the counter ends at exactly that number.
pub async fn concurrent_reservations_respect_the_gate<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let results = race(|_| {
        let (store, alice) = (store.clone(), alice.clone());
        async move {
            let key = ThrottleKey::Account(&alice);
            store
                .reserve_attempt(&key, &policy, at(START))
                .await
                .unwrap()
        }
    })
    .await;
    let counted = results
        .iter()
        .filter(|r| matches!(r, Reservation::Counted(_)))
        .count();
    assert_eq!(counted, policy.free_failures as usize);
    let key = ThrottleKey::Account(&alice);
    assert_eq!(
        store.throttle(&key).await.unwrap().failures,
        policy.free_failures
    );
}

/// A stored code whose lookup is `lookup` (its hash is never checked at this level).
pub fn recovery_record(lookup: &str) -> RecoveryCodeRecord {
    RecoveryCodeRecord {
        lookup: Lookup::parse(lookup).unwrap(),
        phc: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${lookup}"),
        used: false,
    }
}

pub async fn recovery_codes_are_replaced_found_and_consumed<S: Store>(store: S) {
    let alice = user("alice");
    active_factor(&store, &alice, 1).await;
    let lookup = |text: &str| Lookup::parse(text).unwrap();
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 0);
    let set: Vec<_> = ["AAAA", "BBBB", "CCCC"].map(recovery_record).into();
    store
        .replace_recovery_codes(&alice, set.clone())
        .await
        .unwrap();
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 3);
    assert_eq!(
        store.recovery_code(&alice, lookup("BBBB")).await.unwrap(),
        Some(set[1].clone())
    );
    assert_eq!(
        store.recovery_code(&alice, lookup("DDDD")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .recovery_code(&user("bob"), lookup("BBBB"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume_recovery_code(&alice, lookup("BBBB"))
            .await
            .unwrap(),
        Consumption::Consumed { remaining: 2 }
    );
    assert_eq!(
        store
            .consume_recovery_code(&alice, lookup("BBBB"))
            .await
            .unwrap(),
        Consumption::AlreadyUsed
    );
    let used = store
        .recovery_code(&alice, lookup("BBBB"))
        .await
        .unwrap()
        .unwrap();
    assert!(used.used);
    assert_eq!(
        store
            .consume_recovery_code(&alice, lookup("DDDD"))
            .await
            .unwrap(),
        Consumption::NotFound
    );
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 2);
    // Regeneration replaces the whole set: old lookups are gone at once.
    let fresh: Vec<_> = ["EEEE", "FFFF"].map(recovery_record).into();
    store.replace_recovery_codes(&alice, fresh).await.unwrap();
    assert_eq!(
        store.recovery_code(&alice, lookup("AAAA")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .consume_recovery_code(&alice, lookup("AAAA"))
            .await
            .unwrap(),
        Consumption::NotFound
    );
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 2);
}

pub async fn consuming_a_recovery_code_resets_the_account_counter<S: Store>(store: S) {
    let alice = user("alice");
    active_factor(&store, &alice, 1).await;
    let key = ThrottleKey::Account(&alice);
    store
        .replace_recovery_codes(&alice, vec![recovery_record("AAAA")])
        .await
        .unwrap();
    for _ in 0..3 {
        store
            .reserve_attempt(&key, &ThrottlePolicy::ACCOUNT_DEFAULT, at(START))
            .await
            .unwrap();
    }
    let lookup = Lookup::parse("AAAA").unwrap();
    store.consume_recovery_code(&alice, lookup).await.unwrap();
    assert_eq!(store.throttle(&key).await.unwrap().failures, 0);
}

/// 32 tasks consume the same code: exactly one `Consumed`, and the set holds one fewer.
pub async fn concurrent_recovery_consumption_succeeds_once<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    active_factor(&*store, &alice, 1).await;
    let set: Vec<_> = ["AAAA", "BBBB", "CCCC"].map(recovery_record).into();
    store.replace_recovery_codes(&alice, set).await.unwrap();
    let results = race(|_| {
        let (store, alice) = (store.clone(), alice.clone());
        let lookup = Lookup::parse("BBBB").unwrap();
        async move { store.consume_recovery_code(&alice, lookup).await.unwrap() }
    })
    .await;
    let consumed = results
        .iter()
        .filter(|r| matches!(r, Consumption::Consumed { .. }))
        .count();
    let used = results
        .iter()
        .filter(|r| **r == Consumption::AlreadyUsed)
        .count();
    assert_eq!((consumed, used), (1, RACERS - 1));
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 2);
}

// ---- the service over this store ----------------------------------------------------

pub struct Enrolled<S: Store> {
    pub verrou: Arc<Verrou<S, InsecureManualClock>>,
    pub clock: InsecureManualClock,
    pub user: UserId,
    pub secret: TotpSecret,
}

impl<S: Store + Clone> Enrolled<S> {
    /// A second service on the same store and clock, reporting to an in-memory audit sink.
    pub fn audited(&self) -> (Verrou<S, InsecureManualClock>, Arc<MemoryAuditSink>) {
        let sink = Arc::new(MemoryAuditSink::new());
        let verrou = Verrou::new(self.verrou.store().clone(), config())
            .with_clock(self.clock.clone())
            .with_audit_sink(sink.clone());
        (verrou, sink)
    }

    /// Like [`Enrolled::audited`], with another configuration.
    pub fn audited_with(
        &self,
        config: VerrouConfig,
    ) -> (Verrou<S, InsecureManualClock>, Arc<MemoryAuditSink>) {
        let sink = Arc::new(MemoryAuditSink::new());
        let verrou = Verrou::new(self.verrou.store().clone(), config)
            .with_clock(self.clock.clone())
            .with_audit_sink(sink.clone());
        (verrou, sink)
    }
}

impl<S: Store> Enrolled<S> {
    /// The code the user's app shows now, `offset_steps` steps away.
    pub fn code(&self, offset_steps: i64) -> String {
        let now = self.clock.now().unwrap();
        let time = now
            .unix_seconds()
            .checked_add_signed(offset_steps * 30)
            .unwrap();
        insecure_code_at(&self.secret, TotpParams::DEFAULT, at(time))
    }

    /// Verifies `code` for the enrolled user, from an unknown client.
    pub async fn verify(&self, code: &str) -> TotpOutcome {
        self.verrou
            .verify_totp(&self.user, code, &ClientContext::unknown())
            .await
            .unwrap()
    }

    /// Fresh recovery codes for the user, after passing the second factor.
    pub async fn recovery_codes(&self) -> Vec<String> {
        let proof = self.accept(&self.code(0)).await.proof;
        insecure_recovery_codes(&self.verrou, proof)
            .await
            .unwrap()
            .expect("fresh proof refused")
    }

    /// Verifies `code` and insists it is accepted.
    pub async fn accept(&self, code: &str) -> TotpAccepted {
        match self.verify(code).await {
            TotpOutcome::Accepted(accepted) => accepted,
            other => panic!("expected the code to be accepted, got {other:?}"),
        }
    }

    pub fn advance_steps(&self, steps: u64) {
        self.clock.advance(Duration::from_secs(30 * steps));
    }
}

/// Starts an enrolment for `who`: the offer, and the secret an app would read from it.
pub async fn start_enrollment<S: Store, C: Clock>(
    verrou: &Verrou<S, C>,
    who: &UserId,
    account: &str,
) -> (EnrollmentOffer, TotpSecret) {
    let offer = verrou
        .start_totp_enrollment(who, account, &ClientContext::unknown())
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(offer.secret_base32().expose_secret()).unwrap();
    (offer, secret)
}

/// Starts and confirms an enrolment for `who` with the code of the clock's time; returns the
/// secret.
pub async fn enrol<S: Store>(verrou: &Verrou<S, InsecureManualClock>, who: &UserId) -> TotpSecret {
    insecure_enroll(verrou, who)
        .await
        .unwrap()
        .expect("enrolment confirmed")
}

/// Enrols `alice` with a confirmed factor on `store`, one step past the confirmation.
pub async fn enrolled<S: Store>(store: S, config: VerrouConfig) -> Enrolled<S> {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store, config).with_clock(clock.clone());
    let alice = user("alice");
    let secret = enrol(&verrou, &alice).await;
    clock.advance(Duration::from_secs(30));
    Enrolled {
        verrou: Arc::new(verrou),
        clock,
        user: alice,
        secret,
    }
}

pub fn config() -> VerrouConfig {
    VerrouConfig::new("Portail Partenaires").unwrap()
}

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

// ---- audit trail ---------------------------------------------------------------------

pub async fn audit_trail_is_kept_newest_first<S: Store>(store: S) {
    let (alice, bob) = (user("alice"), user("bob"));
    let factor = FactorId::generate().unwrap();
    let client = Some("2001:db8::7".parse().unwrap());
    let kinds = [
        AuditKind::TotpEnrollmentConfirmed { factor },
        AuditKind::TotpAccepted {
            factor,
            step: 59_833_334,
            drift: -1,
        },
        AuditKind::LockEngaged { until: None },
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let event = AuditEvent::new(at(START + i as u64), alice.clone(), client, kind.clone());
        store.record_audit(event).await.unwrap();
        let other = AuditEvent::new(at(START + i as u64), bob.clone(), None, kind.clone());
        store.record_audit(other).await.unwrap();
    }
    let trail = store.audit_trail(Some(&alice), 10).await.unwrap();
    let got: Vec<_> = trail.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(got, kinds.iter().rev().cloned().collect::<Vec<_>>());
    assert!(trail.iter().all(|e| e.user == alice && e.client == client));
    assert_eq!(trail[0].at, at(START + 2));
    assert_eq!(store.audit_trail(None, 4).await.unwrap().len(), 4);
    assert_eq!(store.audit_trail(Some(&bob), 1).await.unwrap()[0].user, bob);
    assert!(store
        .audit_trail(Some(&user("carol")), 10)
        .await
        .unwrap()
        .is_empty());
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

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh store from `$make`,
/// an `async fn` returning `(store, guard)`; the guard (a temporary directory, a schema to
/// drop) lives until the case ends. `concurrency $make` expands the concurrency cases only.
#[macro_export]
macro_rules! store_conformance {
    ($make:path) => {
        $crate::store_conformance!(@cases $make;
            pending_is_stored_and_replaced,
            activation_promotes_pending_once,
            activation_refuses_wrong_id_and_expired,
            activation_refuses_superseded,
            step_advances_only_forward,
            factors_are_removed,
            throttle_counts_until_the_gate_closes,
            throttle_keys_are_independent,
            accepting_a_step_resets_the_account_counter,
            service_accepts_a_valid_code_once,
            service_refuses_an_earlier_step_after_a_later_one,
            recovery_codes_are_replaced_found_and_consumed,
            consuming_a_recovery_code_resets_the_account_counter,
            recovery_codes_exist_only_with_an_active_factor,
            audit_trail_is_kept_newest_first,
            service_writes_its_audit_trail_to_the_store,
            sessions_are_created_found_and_touched,
            elevation_swaps_the_token_once,
            revocation_covers_each_scope,
            binding_changes_only_by_compare_and_set,
            expired_sessions_are_purged,
            service_sessions_rise_only_through_the_second_factor,
            service_lifetimes_follow_the_injected_clock,
            service_step_up_needs_a_fresh_second_factor,
            service_factor_changes_revoke_other_sessions,
            service_unbound_sessions_end_after_the_grace,
            service_a_late_registration_is_refused,
            service_a_sessions_proof_cannot_elevate_another_session,
            service_a_kept_step_up_proof_dies_with_its_session,
            service_cookies_live_as_long_as_their_sessions,
            service_binding_refusals_name_the_user,
            service_soft_signals_ask_for_step_up_when_on,
            service_a_second_factor_rebinds_a_session_that_lost_its_key,
            service_reenrolment_revokes_the_other_sessions,
            service_client_flags_never_raise_a_level,
            service_challenge_floods_do_not_evict_the_browsers_challenge,
        );
        $crate::store_conformance!(concurrency $make);
    };
    (concurrency $make:path) => {
        $crate::store_conformance!(@cases $make;
            concurrent_activation_succeeds_once,
            concurrent_same_step_advances_once,
            concurrent_steps_never_go_back,
            concurrent_reservations_respect_the_gate,
            service_race_accepts_one,
            service_burst_is_throttled,
            concurrent_recovery_consumption_succeeds_once,
            service_recovery_code_race_accepts_one,
            concurrent_replacements_leave_one_set,
            concurrent_replacements_never_outlive_a_removal,
            service_a_reset_leaves_no_working_recovery_code,
            concurrent_elevations_succeed_once,
            concurrent_binding_swaps_succeed_once,
            service_concurrent_refreshes_accept_one_proof,
            service_revocation_takes_effect_on_the_next_request,
            service_stolen_cookies_stop_working_without_the_device,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
