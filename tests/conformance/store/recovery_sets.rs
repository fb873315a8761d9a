//! Recovery-code sets against factor removal: codes exist only beside an active factor, and
//! every operation that replaces or voids a user's codes is serialised per user, so neither a
//! double submit nor an operator's reset racing a regeneration leaves a set nobody saw or
//! codes that outlive the factor they back.

use std::sync::Arc;

use verrou::recovery::Lookup;
use verrou::store::backend::{Consumption, RecoveryCodeRecord, Replacement};
use verrou::store::Store;

use crate::support::*;

/// A four-character lookup made of `n`'s digits in the lookup alphabet.
fn lookup_for(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ0123456789";
    (0..4)
        .map(|i| ALPHABET[(n >> (5 * i)) % ALPHABET.len()] as char)
        .collect()
}

/// The set task `task` of a race writes: three codes only it uses.
fn set_of(task: usize) -> Vec<RecoveryCodeRecord> {
    (0..3)
        .map(|i| recovery_record(&lookup_for(task * 3 + i + 1)))
        .collect()
}

pub async fn recovery_codes_exist_only_with_an_active_factor<S: Store>(store: S) {
    let alice = user("alice");
    let lookup = Lookup::parse("AAAA").unwrap();
    let refused = store
        .replace_recovery_codes(&alice, vec![recovery_record("AAAA")])
        .await
        .unwrap();
    assert_eq!(refused, Replacement::NoActiveFactor);
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 0);
    // Voiding codes needs no factor.
    let voided = store.replace_recovery_codes(&alice, Vec::new()).await;
    assert_eq!(voided.unwrap(), Replacement::Replaced);

    active_factor(&store, &alice, 1).await;
    let stored = store
        .replace_recovery_codes(
            &alice,
            vec![recovery_record("AAAA"), recovery_record("BBBB")],
        )
        .await
        .unwrap();
    assert_eq!(stored, Replacement::Replaced);
    assert!(store.remove_totp(&alice).await.unwrap());
    // The factor's removal took its codes with it.
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 0);
    assert_eq!(store.recovery_code(&alice, lookup).await.unwrap(), None);
    assert_eq!(
        store.consume_recovery_code(&alice, lookup).await.unwrap(),
        Consumption::NoActiveFactor
    );
}

/// 32 simultaneous regenerations (a double submit, many times over) leave exactly one whole
/// set: the one a single task wrote.
pub async fn concurrent_replacements_leave_one_set<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    active_factor(&*store, &alice, 1).await;
    let results = race(|task| {
        let (store, alice) = (store.clone(), alice.clone());
        async move {
            store
                .replace_recovery_codes(&alice, set_of(task))
                .await
                .unwrap()
        }
    })
    .await;
    assert!(results.iter().all(|r| *r == Replacement::Replaced));
    assert_eq!(store.remaining_recovery_codes(&alice).await.unwrap(), 3);
    let mut owners = Vec::new();
    for task in 0..RACERS {
        for record in set_of(task) {
            if store
                .recovery_code(&alice, record.lookup)
                .await
                .unwrap()
                .is_some()
            {
                owners.push(task);
            }
        }
    }
    assert_eq!(owners.len(), 3, "{owners:?}");
    assert!(owners.iter().all(|task| *task == owners[0]), "{owners:?}");
}

/// Rounds of 31 regenerations racing one factor removal: whatever the order, the removal
/// leaves no factor and no code.
pub async fn concurrent_replacements_never_outlive_a_removal<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let alice = user("alice");
    for round in 0..5 {
        active_factor(&*store, &alice, 1).await;
        race(|task| {
            let (store, alice) = (store.clone(), alice.clone());
            async move {
                if task == RACERS / 2 {
                    store.remove_totp(&alice).await.unwrap();
                } else {
                    store
                        .replace_recovery_codes(&alice, set_of(task))
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        assert_eq!(store.active_totp(&alice).await.unwrap(), None);
        let left = store.remaining_recovery_codes(&alice).await.unwrap();
        assert_eq!(left, 0, "round {round}: {left} codes outlived the factor");
    }
}
