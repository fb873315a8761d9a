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
use verrou::lockout::{Gate, ThrottlePolicy, ThrottleState};
use verrou::store::{
    Activation, PendingTotp, Reservation, StepAdvance, Store, ThrottleKey, TotpFactor,
};
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::{
    ClientContext, EnrollmentOutcome, FactorId, Timestamp, TotpOutcome, TotpParams, TotpSecret,
    UserId, Verrou, VerrouConfig,
};

/// How many tasks race in the concurrency cases.
pub const RACERS: usize = 32;
/// A fixed, realistic start time (2026-11-23).
pub const START: u64 = 1_795_000_000;

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
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, barrier, alice) = (store.clone(), barrier.clone(), alice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .activate_pending_totp(&alice, p.id, 100 + i as u64, at(START))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut activated = 0;
    for task in tasks {
        if task.await.unwrap() == Activation::Activated {
            activated += 1;
        }
    }
    assert_eq!(activated, 1);
}

pub async fn step_advances_only_forward<S: Store>(store: S) {
    let alice = user("alice");
    let factor = active_factor(&store, &alice, 10).await;
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 10).await.unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 9).await.unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 11).await.unwrap(),
        StepAdvance::Advanced
    );
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 11).await.unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 15).await.unwrap(),
        StepAdvance::Advanced
    );
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 12).await.unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(
        store.active_totp(&alice).await.unwrap().unwrap().last_step,
        15
    );
    let other = FactorId::generate().unwrap();
    assert_eq!(
        store.accept_totp_step(&alice, other, 99).await.unwrap(),
        StepAdvance::NoSuchFactor
    );
    assert_eq!(
        store
            .accept_totp_step(&user("bob"), factor.id, 99)
            .await
            .unwrap(),
        StepAdvance::NoSuchFactor
    );
    assert_eq!(
        store.active_totp(&alice).await.unwrap().unwrap().last_step,
        15
    );
}

/// 32 tasks record the same step: exactly one `Advanced`.
pub async fn concurrent_same_step_advances_once<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let factor = active_factor(&*store, &alice, 10).await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier, alice) = (store.clone(), barrier.clone(), alice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.accept_totp_step(&alice, factor.id, 11).await.unwrap()
            })
        })
        .collect();
    let mut advanced = 0;
    for task in tasks {
        match task.await.unwrap() {
            StepAdvance::Advanced => advanced += 1,
            StepAdvance::AlreadyUsed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(advanced, 1);
}

/// Concurrent different steps: the last step ends at the maximum, never goes back.
pub async fn concurrent_steps_never_go_back<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let factor = active_factor(&*store, &alice, 0).await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS as u64)
        .map(|i| {
            let (store, barrier, alice) = (store.clone(), barrier.clone(), alice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .accept_totp_step(&alice, factor.id, 1 + (i * 7) % 32)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.active_totp(&alice).await.unwrap().unwrap().last_step,
        32
    );
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
        store.accept_totp_step(&alice, factor.id, 5).await.unwrap(),
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
        store.accept_totp_step(&alice, factor.id, 10).await.unwrap(),
        StepAdvance::AlreadyUsed
    );
    assert_eq!(store.throttle(&key).await.unwrap().failures, 3);
    assert_eq!(
        store.accept_totp_step(&alice, factor.id, 11).await.unwrap(),
        StepAdvance::Advanced
    );
    assert_eq!(store.throttle(&key).await.unwrap().failures, 0);
}

/// 32 tasks reserve at the same instant: exactly `free_failures` are counted, the rest
/// refused; the counter ends at exactly that number.
pub async fn concurrent_reservations_respect_the_gate<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier, alice) = (store.clone(), barrier.clone(), alice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let key = ThrottleKey::Account(&alice);
                store
                    .reserve_attempt(&key, &ThrottlePolicy::ACCOUNT_DEFAULT, at(START))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let key = ThrottleKey::Account(&alice);
    let mut counted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Reservation::Counted(_)) {
            counted += 1;
        }
    }
    assert_eq!(counted, ThrottlePolicy::ACCOUNT_DEFAULT.free_failures);
    assert_eq!(store.throttle(&key).await.unwrap().failures, counted);
}

// ---- the service over this store ----------------------------------------------------

pub struct Enrolled<S: Store> {
    pub verrou: Arc<Verrou<S, InsecureManualClock>>,
    pub clock: InsecureManualClock,
    pub user: UserId,
    pub secret: TotpSecret,
}

impl<S: Store> Enrolled<S> {
    /// The code the user's app shows now, `offset_steps` steps away.
    pub fn code(&self, offset_steps: i64) -> String {
        let now = verrou::Clock::now(&self.clock).unwrap();
        let time = now
            .unix_seconds()
            .checked_add_signed(offset_steps * 30)
            .unwrap();
        insecure_code_at(&self.secret, TotpParams::DEFAULT, at(time))
    }

    pub fn advance_steps(&self, steps: u64) {
        self.clock.advance(Duration::from_secs(30 * steps));
    }
}

/// Enrols `alice` with a confirmed factor on `store`, one step past the confirmation.
pub async fn enrolled<S: Store>(store: S, config: VerrouConfig) -> Enrolled<S> {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store, config).with_clock(clock.clone());
    let alice = user("alice");
    let ctx = ClientContext::unknown();
    let offer = verrou
        .start_totp_enrollment(&alice, "alice@partner.example", &ctx)
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(offer.secret_base32().expose_secret()).unwrap();
    let code = insecure_code_at(&secret, TotpParams::DEFAULT, at(START));
    let outcome = verrou
        .finish_totp_enrollment(&alice, &code, &ctx)
        .await
        .unwrap();
    assert!(
        matches!(outcome, EnrollmentOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
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
    let ctx = ClientContext::unknown();
    let code = e.code(0);
    let first = e.verrou.verify_totp(&e.user, &code, &ctx).await.unwrap();
    assert!(
        matches!(first, TotpOutcome::Accepted(ref a) if a.drift == 0),
        "{first:?}"
    );
    let again = e.verrou.verify_totp(&e.user, &code, &ctx).await.unwrap();
    assert_eq!(again, TotpOutcome::Replayed);
}

/// 32 concurrent verifications of one valid code: exactly one `Accepted`.
pub async fn service_race_accepts_one<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let code = e.code(0);
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (verrou, barrier, who, code) = (
                e.verrou.clone(),
                barrier.clone(),
                e.user.clone(),
                code.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                verrou
                    .verify_totp(&who, &code, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            TotpOutcome::Accepted(_) => accepted += 1,
            TotpOutcome::Replayed | TotpOutcome::Throttled { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
}

/// A later step accepted first makes an earlier (still in-window) code unusable.
pub async fn service_refuses_an_earlier_step_after_a_later_one<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let ctx = ClientContext::unknown();
    let earlier = e.code(-1);
    let later = e.code(1);
    assert!(matches!(
        e.verrou.verify_totp(&e.user, &later, &ctx).await.unwrap(),
        TotpOutcome::Accepted(_)
    ));
    assert_eq!(
        e.verrou.verify_totp(&e.user, &earlier, &ctx).await.unwrap(),
        TotpOutcome::Replayed
    );
    assert_eq!(
        e.verrou
            .verify_totp(&e.user, &e.code(0), &ctx)
            .await
            .unwrap(),
        TotpOutcome::Replayed
    );
}

/// A burst of concurrent wrong guesses at one instant: only `free_failures` (3) codes are
/// compared; every other request is refused by the throttle before any check.
pub async fn service_burst_is_throttled<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let valid = e.code(0);
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (verrou, barrier, who) = (e.verrou.clone(), barrier.clone(), e.user.clone());
            let guess = format!(
                "{:06}",
                (valid.parse::<u32>().unwrap() + 1 + i as u32) % 1_000_000
            );
            tokio::spawn(async move {
                barrier.wait().await;
                verrou
                    .verify_totp(&who, &guess, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            TotpOutcome::Invalid | TotpOutcome::Replayed => checked += 1,
            TotpOutcome::Throttled { .. } | TotpOutcome::Locked { .. } => refused += 1,
            TotpOutcome::Accepted(_) => panic!("a wrong guess was accepted"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        checked, 3,
        "only the free attempts may reach the comparison"
    );
    assert_eq!(refused, RACERS - 3);
}

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh store from `$make`.
#[macro_export]
macro_rules! store_conformance {
    ($make:path) => {
        $crate::store_conformance!(@cases $make;
            pending_is_stored_and_replaced,
            activation_promotes_pending_once,
            activation_refuses_wrong_id_and_expired,
            activation_refuses_superseded,
            concurrent_activation_succeeds_once,
            step_advances_only_forward,
            concurrent_same_step_advances_once,
            concurrent_steps_never_go_back,
            factors_are_removed,
            throttle_counts_until_the_gate_closes,
            throttle_keys_are_independent,
            accepting_a_step_resets_the_account_counter,
            concurrent_reservations_respect_the_gate,
            service_accepts_a_valid_code_once,
            service_race_accepts_one,
            service_refuses_an_earlier_step_after_a_later_one,
            service_burst_is_throttled,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                conformance::$case($make().await).await;
            }
        )*
    };
}
