//! Key rotation, for every store that seals secrets: written once, run on SQLite and
//! PostgreSQL by `rotation_cases!(make_database)`, where `make_database` returns a
//! [`Database`]: something that opens store handles on one database with a given key ring.

use std::future::Future;
use std::time::Duration;

use verrou::store::{KeyRotation, Store};
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::{
    ClientContext, KeyId, KeyRing, KeyRingError, TotpOutcome, TotpParams, TotpSecret, UserId,
    Verrou,
};

use crate::support::{at, config, enrol, start_enrollment, user, START};

/// One database, opened as many times as a test needs, each time with its own key ring (as
/// portal instances restarted with a new configuration would).
pub trait Database: Send + Sync {
    type Store: KeyRotation + Clone + 'static;
    /// Opens a handle with `keys`, or the store's refusal.
    fn try_open(
        &self,
        keys: KeyRing,
    ) -> impl Future<Output = Result<Self::Store, verrou::StoreError>> + Send;
    /// Opens a handle with `keys`, which the store must accept.
    fn open(&self, keys: KeyRing) -> impl Future<Output = Self::Store> + Send {
        async { self.try_open(keys).await.unwrap() }
    }
}

/// `[active, older…]`, each key 32 copies of its number.
pub fn ring(ids: &[(&str, u8)]) -> KeyRing {
    let keys: Vec<(KeyId, [u8; 32])> = ids
        .iter()
        .map(|(id, byte)| (KeyId::new(id).unwrap(), [*byte; 32]))
        .collect();
    let (first, rest) = keys.split_first().unwrap();
    KeyRing::new(
        (first.0.clone(), &first.1),
        rest.iter().map(|(id, k)| (id.clone(), k)),
    )
    .unwrap()
}

fn old() -> KeyRing {
    ring(&[("k1", 1)])
}
fn rotating() -> KeyRing {
    ring(&[("k2", 2), ("k1", 1)])
}
fn new_only() -> KeyRing {
    ring(&[("k2", 2)])
}

/// Enrols `n` users (`user-0` …) on `store`, and leaves `pending` more users with a started,
/// unconfirmed enrolment. Returns the confirmed users and their secrets.
async fn populate<S: Store + Clone>(
    store: S,
    n: usize,
    pending: usize,
) -> Vec<(UserId, TotpSecret)> {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store.clone(), config()).with_clock(clock);
    let users = populate_more(store, "user", n).await;
    for i in 0..pending {
        start_enrollment(&verrou, &user(&format!("pending-{i}")), "p@example.org").await;
    }
    users
}

/// A fresh code for each user is accepted through `store`, at `time`.
async fn all_verify<S: Store>(store: S, users: &[(UserId, TotpSecret)], time: u64) {
    let verrou = Verrou::new(store, config()).with_clock(InsecureManualClock::new(at(time)));
    for (who, secret) in users {
        let code = insecure_code_at(secret, TotpParams::DEFAULT, at(time));
        let outcome = verrou
            .verify_totp(who, &code, &ClientContext::unknown())
            .await
            .unwrap();
        assert!(
            matches!(outcome, TotpOutcome::Accepted(_)),
            "{who}: {outcome:?}"
        );
    }
}

pub async fn rotation_reseals_everything_and_the_old_key_can_go<D: Database>(db: D) {
    let users = populate(db.open(old()).await, 12, 3).await;

    let report = db.open(rotating()).await.rotate_keys().await.unwrap();
    assert_eq!((report.resealed, report.stale), (15, 0), "{report:?}");
    // Idempotent: a second run finds nothing to do.
    let again = db.open(rotating()).await.rotate_keys().await.unwrap();
    assert_eq!((again.scanned, again.resealed, again.stale), (15, 0, 0));

    // The old key is removed from the configuration: everything still opens and verifies.
    let store = db.open(new_only()).await;
    for i in 0..3 {
        assert!(store
            .pending_totp(&user(&format!("pending-{i}")))
            .await
            .unwrap()
            .is_some());
    }
    all_verify(store, &users, START + 3_600).await;
    // And a handle that only knows the old key is refused: it can no longer read anything.
    let Err(err) = db.try_open(old()).await else {
        panic!("the old key still opens the store");
    };
    assert_eq!(err.kind(), verrou::error::StoreErrorKind::KeyMismatch);
    let source = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<KeyRingError>());
    assert_eq!(source, Some(&KeyRingError::UnknownKey));
}

pub async fn an_interrupted_rotation_resumes<D: Database>(db: D) {
    let users = populate(db.open(old()).await, 10, 0).await;
    let first = db.open(rotating()).await;
    let partial = first.reseal_stale(4).await.unwrap();
    assert_eq!((partial.resealed, partial.stale), (4, 6), "{partial:?}");
    drop(first); // the operator's process dies here

    let resumed = db.open(rotating()).await.rotate_keys().await.unwrap();
    assert_eq!((resumed.resealed, resumed.stale), (6, 0), "{resumed:?}");
    all_verify(db.open(new_only()).await, &users, START + 3_600).await;
}

/// A rotation tells its observer how far it has come after each batch (pending secrets, then
/// active ones), and the last word matches the report; a second run finds everything
/// current.
pub async fn a_rotation_reports_its_progress_batch_by_batch<D: Database>(db: D) {
    populate(db.open(old()).await, 7, 2).await;
    let store = db.open(rotating()).await;
    let mut seen = Vec::new();
    let report = store
        .rotate_keys_with(|progress| seen.push((progress.pass, progress.report.clone())))
        .await
        .unwrap();
    let scanned: Vec<_> = seen
        .iter()
        .map(|(pass, r)| (*pass, r.scanned, r.resealed))
        .collect();
    assert_eq!(scanned, [(1, 2, 2), (1, 9, 9)], "{seen:?}");
    assert_eq!(seen.last().map(|(_, r)| r), Some(&report));
    assert_eq!(report.current(), 0);

    let again = store.rotate_keys().await.unwrap();
    assert_eq!((again.scanned, again.resealed, again.current()), (9, 0, 9));
}

pub async fn rotation_is_safe_while_verifications_run<D: Database>(db: D) {
    const STEPS: u64 = 6;
    let users = populate(db.open(old()).await, 16, 0).await;
    // The instances serving logins already know the new key (step one of a rotation).
    let serving = db.open(rotating()).await;
    let operator = db.open(rotating()).await;
    let rotation = tokio::spawn(async move { operator.rotate_keys().await.unwrap() });
    let logins: Vec<_> = users
        .iter()
        .cloned()
        .map(|(who, secret)| {
            let verrou = Verrou::new(serving.clone(), config());
            let clock = InsecureManualClock::new(at(START + 3_600));
            let verrou = verrou.with_clock(clock.clone());
            tokio::spawn(async move {
                let mut accepted = 0;
                for _ in 0..STEPS {
                    clock.advance(Duration::from_secs(30));
                    let now = verrou::Clock::now(&clock).unwrap();
                    let code = insecure_code_at(&secret, TotpParams::DEFAULT, now);
                    let ctx = ClientContext::unknown();
                    match verrou.verify_totp(&who, &code, &ctx).await.unwrap() {
                        TotpOutcome::Accepted(_) => accepted += 1,
                        other => panic!("{who}: {other:?} during the rotation"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut results = Vec::new();
    for login in logins {
        results.push(login.await.unwrap());
    }
    assert_eq!(results.iter().sum::<u64>(), 16 * STEPS);
    let report = rotation.await.unwrap();
    assert_eq!(report.stale, 0, "{report:?}");
    assert!(report.resealed >= 16, "{report:?}");
    all_verify(db.open(new_only()).await, &users, START + 7_200).await;
}

/// A secret sealed under a key no longer in the ring (lost, or removed too early) does not
/// stop a rotation: it is reported by user and factor, the others are re-sealed, and every
/// user whose secret opens keeps logging in.
pub async fn an_unreadable_secret_is_reported_and_the_rotation_goes_on<D: Database>(db: D) {
    // The store starts under k1; one secret is then sealed under a key k0 the operators
    // later lose.
    let users = populate(db.open(old()).await, 6, 0).await;
    let lost = user("lost-0");
    enrol(
        &Verrou::new(db.open(ring(&[("k0", 9), ("k1", 1)])).await, config())
            .with_clock(InsecureManualClock::new(at(START))),
        &lost,
    )
    .await;
    let report = db.open(rotating()).await.rotate_keys().await.unwrap();
    assert_eq!(
        (report.scanned, report.resealed, report.stale),
        (7, 6, 0),
        "{report:?}"
    );
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    let unreadable = &report.unreadable[0];
    assert_eq!(unreadable.user, "lost-0");
    assert_eq!(unreadable.reason, KeyRingError::UnknownKey);
    all_verify(db.open(new_only()).await, &users, START + 3_600).await;
    // The next run reports it again, and nothing else to do.
    let again = db.open(rotating()).await.rotate_keys().await.unwrap();
    assert_eq!((again.resealed, again.unreadable.len()), (0, 1));
}

/// A store opened with a key ring that is not its own is refused when it opens, with an
/// error that says so, instead of failing at the first login. After a rotation the new key
/// alone opens it (the check value was re-sealed with the secrets).
pub async fn a_foreign_key_ring_is_refused_when_the_store_opens<D: Database>(db: D) {
    // An empty store: the ring that created it is the one it checks.
    drop(db.open(old()).await);
    for foreign in [ring(&[("k1", 7)]), ring(&[("other", 1)]), new_only()] {
        let Err(err) = db.try_open(foreign).await else {
            panic!("a foreign ring was accepted");
        };
        assert_eq!(err.kind(), verrou::error::StoreErrorKind::KeyMismatch);
        assert!(err.to_string().contains("key ring does not match"), "{err}");
    }
    populate(db.open(old()).await, 2, 1).await;
    db.open(rotating()).await.rotate_keys().await.unwrap();
    assert!(db.try_open(new_only()).await.is_ok());
    assert!(db.try_open(old()).await.is_err());
}

/// A running store takes each step's key ring without being reopened, for every clone of
/// it, while users keep verifying: the new key is added (first), the secrets are re-sealed,
/// the old key is removed. A ring that would leave secrets it cannot open is refused, and the
/// ring in use is kept.
pub async fn a_running_store_takes_each_new_key_ring_without_reopening<D: Database>(db: D) {
    let running = db.open(old()).await;
    let instance = running.clone(); // another part of the same process, sharing the handle
    let mut users = populate(running.clone(), 4, 0).await;
    let counts = running.sealed_secrets().await.unwrap();
    assert_eq!(counts.by_key.get(&KeyId::new("k1").unwrap()), Some(&4));

    // Step 1: the new key goes first; new enrolments are sealed with it.
    running.replace_key_ring(rotating()).await.unwrap();
    users.extend(populate_more(instance.clone(), "late", 2).await);
    let counts = instance.sealed_secrets().await.unwrap();
    assert_eq!(
        (
            counts.by_key.get(&KeyId::new("k1").unwrap()),
            counts.by_key.get(&KeyId::new("k2").unwrap()),
            counts.malformed
        ),
        (Some(&4), Some(&2), 0)
    );
    all_verify(instance.clone(), &users, START + 600).await;

    // Removing the old key now would strand four users: refused, and nothing changes.
    let err = running.replace_key_ring(new_only()).await.unwrap_err();
    assert_eq!(err.kind(), verrou::error::StoreErrorKind::KeyMismatch);
    assert!(err.to_string().contains("finish the rotation"), "{err}");
    all_verify(instance.clone(), &users, START + 1_200).await;
    // So is a ring that does not open the store at all.
    let err = running
        .replace_key_ring(ring(&[("k9", 9)]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), verrou::error::StoreErrorKind::KeyMismatch);

    // Step 2: the rotation; step 3: the old key goes.
    let report = running.rotate_keys().await.unwrap();
    assert_eq!((report.resealed, report.stale), (4, 0), "{report:?}");
    running.replace_key_ring(new_only()).await.unwrap();
    let counts = instance.sealed_secrets().await.unwrap();
    assert_eq!(counts.by_key.len(), 1);
    assert_eq!(counts.beyond(&new_only()), 0);
    all_verify(instance, &users, START + 1_800).await;
    // The old ring cannot come back: it opens nothing any more.
    assert!(running.replace_key_ring(old()).await.is_err());
}

/// Enrols `n` more users named `<prefix>-0` … on `store`.
async fn populate_more<S: Store>(store: S, prefix: &str, n: usize) -> Vec<(UserId, TotpSecret)> {
    let verrou = Verrou::new(store, config()).with_clock(InsecureManualClock::new(at(START)));
    let mut users = Vec::new();
    for i in 0..n {
        let who = user(&format!("{prefix}-{i}"));
        let secret = enrol(&verrou, &who).await;
        users.push((who, secret));
    }
    users
}

/// Expands to one `#[tokio::test]` per rotation case, each on a fresh database from `$make`.
macro_rules! rotation_cases {
    ($make:path) => {
        rotation_cases!(@cases $make;
            rotation_reseals_everything_and_the_old_key_can_go,
            an_interrupted_rotation_resumes,
            a_rotation_reports_its_progress_batch_by_batch,
            rotation_is_safe_while_verifications_run,
            an_unreadable_secret_is_reported_and_the_rotation_goes_on,
            a_foreign_key_ring_is_refused_when_the_store_opens,
            a_running_store_takes_each_new_key_ring_without_reopening,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::rotation::$case($make().await).await;
            }
        )*
    };
}
