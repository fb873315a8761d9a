//! Store cases: TOTP factors, time steps, throttle counters, recovery codes and the audit
//! trail, each atomic operation alone and under 32-way concurrency.

use std::sync::Arc;

use verrou::audit::{AuditEvent, AuditKind};
use verrou::lockout::{Gate, ThrottlePolicy, ThrottleState};
use verrou::recovery::Lookup;
use verrou::store::backend::{Activation, Consumption, Reservation, StepAdvance, ThrottleKey};
use verrou::store::{AuditEntry, AuditQuery, Store};
use verrou::FactorId;

use crate::support::*;

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

/// What an operator (or a SIEM) asks of the trail: one user's, one kind, a time range, and
/// everything after the last event it saw, oldest first, without gaps or repeats.
pub async fn audit_events_filter_and_follow<S: Store>(store: S) {
    let (alice, bob) = (user("alice"), user("bob"));
    let factor = FactorId::generate().unwrap();
    let invalid = AuditKind::TotpInvalid { factor };
    for i in 0..6u64 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        let kind = if i < 3 {
            invalid.clone()
        } else {
            AuditKind::LockLifted
        };
        let event = AuditEvent::new(at(START + 10 * i), who.clone(), None, kind);
        store.record_audit(event).await.unwrap();
    }
    let times = |entries: &[AuditEntry]| {
        entries
            .iter()
            .map(|e| e.event.at.unix_seconds() - START)
            .collect::<Vec<_>>()
    };
    let query = AuditQuery::newest(10).user(Some(alice.clone()));
    assert_eq!(
        times(&store.audit_events(&query).await.unwrap()),
        [40, 20, 0]
    );
    let query = AuditQuery::newest(10).kind(Some("totp_invalid".into()));
    assert_eq!(
        times(&store.audit_events(&query).await.unwrap()),
        [20, 10, 0]
    );
    let query = AuditQuery::newest(10).between(Some(at(START + 10)), Some(at(START + 40)));
    assert_eq!(
        times(&store.audit_events(&query).await.unwrap()),
        [30, 20, 10]
    );
    let query = AuditQuery::newest(10)
        .user(Some(bob.clone()))
        .kind(Some("lock_lifted".into()));
    assert_eq!(times(&store.audit_events(&query).await.unwrap()), [50, 30]);
    assert_eq!(
        times(&store.audit_events(&AuditQuery::newest(2)).await.unwrap()),
        [50, 40]
    );

    // Following: from the newest seen, the later events in order, then nothing.
    let newest = store.audit_events(&AuditQuery::newest(1)).await.unwrap();
    let mut cursor = newest[0].seq;
    for i in 6..9u64 {
        let event = AuditEvent::new(
            at(START + 10 * i),
            alice.clone(),
            None,
            AuditKind::LockLifted,
        );
        store.record_audit(event).await.unwrap();
    }
    let mut followed = Vec::new();
    loop {
        let page = store
            .audit_events(&AuditQuery::after(cursor, 2))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        followed.extend(times(&page));
    }
    assert_eq!(followed, [60, 70, 80]);
    let filtered = AuditQuery::after(newest[0].seq, 10).user(Some(bob.clone()));
    assert!(store.audit_events(&filtered).await.unwrap().is_empty());

    // An operator's command, with its text, reads back as recorded.
    let operator = user("root@admin-1");
    let command = AuditKind::OperatorCommand {
        command: "revoke-org formation-nord --yes".into(),
    };
    let event = AuditEvent::new(at(START + 90), operator.clone(), None, command);
    store.record_audit(event.clone()).await.unwrap();
    let query = AuditQuery::newest(5).kind(Some("operator_command".into()));
    let read = store.audit_events(&query).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].event, event);
}

/// What an operator's status shows: the accounts with failures counted, and nothing for
/// addresses or for accounts cleared by a success or an operator.
pub async fn failing_accounts_are_listed<S: Store>(store: S) {
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    for _ in 0..2 {
        let key = ThrottleKey::Account(&bob);
        store
            .reserve_attempt(&key, &policy, at(START))
            .await
            .unwrap();
    }
    let key = ThrottleKey::Account(&alice);
    store
        .reserve_attempt(&key, &policy, at(START + 5))
        .await
        .unwrap();
    let key = ThrottleKey::Account(&carol);
    store
        .reserve_attempt(&key, &policy, at(START))
        .await
        .unwrap();
    store.clear_throttle(&key).await.unwrap();
    let address = ThrottleKey::for_address("192.0.2.7".parse().unwrap());
    store
        .reserve_attempt(&address, &policy, at(START))
        .await
        .unwrap();

    let failing = store.failing_accounts().await.unwrap();
    let listed: Vec<(&str, u32)> = failing
        .iter()
        .map(|(user, state)| (user.as_str(), state.failures))
        .collect();
    assert_eq!(listed, [("alice", 1), ("bob", 2)]);
    assert_eq!(failing[0].1.last_failure, at(START + 5));
}

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
