//! The conformance suite on PostgreSQL, each case in a schema of its own that is dropped
//! afterwards; the concurrency cases again through two stores with separate connection
//! pools, as two portal instances would run.
//!
//! The server comes from `VERROU_TEST_POSTGRES_URL` (the README's test command sets it to the
//! local server). Unset, these tests fail and say so: they never pass without a server.

#![allow(clippy::unwrap_used, clippy::panic)]

use verrou::store::PostgresStore;
use verrou::testing::insecure_key_ring;

use crate::support::postgres::{server, Schema};
use crate::two_handles::TwoHandles;

async fn make_store() -> (PostgresStore, Schema) {
    let (url, schema) = server();
    let store = PostgresStore::connect_in_schema(&url, &schema.name, insecure_key_ring().unwrap())
        .await
        .unwrap();
    (store, schema)
}

async fn make_two_pools() -> (TwoHandles<PostgresStore>, Schema) {
    let (url, schema) = server();
    let keys = insecure_key_ring().unwrap();
    let first = PostgresStore::connect_in_schema(&url, &schema.name, keys.clone());
    let second = PostgresStore::connect_in_schema(&url, &schema.name, keys);
    let (first, second) = tokio::join!(first, second);
    (TwoHandles::new(first.unwrap(), second.unwrap()), schema)
}

store_conformance!(make_store);

/// A schema for the rotation cases, opened with any key ring.
struct InSchema {
    url: String,
    schema: Schema,
}

impl crate::rotation::Database for InSchema {
    type Store = PostgresStore;
    async fn try_open(&self, keys: KeyRing) -> Result<PostgresStore, verrou::StoreError> {
        PostgresStore::connect_in_schema(&self.url, &self.schema.name, keys).await
    }
}

async fn make_schema() -> InSchema {
    let (url, schema) = server();
    InSchema { url, schema }
}

rotation_cases!(make_schema);

mod two_pools {
    use super::*;
    store_conformance!(concurrency make_two_pools);
}

// ---- PostgreSQL only: schema versions, secrets at rest ----------------------------------

use crate::support::{config, enrolled, secret_bytes};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use verrou::error::StoreErrorKind;
use verrou::KeyRing;

async fn raw(url: &str, schema: &Schema) -> PgConnection {
    raw_in(url, &schema.name).await
}

/// A bare connection whose tables are those of the schema named `schema`.
async fn raw_in(url: &str, schema: &str) -> PgConnection {
    let options: PgConnectOptions = url.parse().unwrap();
    options
        .options([("search_path", schema)])
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (url, schema) = server();
    let keys = insecure_key_ring().unwrap();
    PostgresStore::connect_in_schema(&url, &schema.name, keys.clone())
        .await
        .unwrap()
        .close()
        .await;
    sqlx::query("UPDATE verrou_schema_version SET version = version + 1")
        .execute(&mut raw(&url, &schema).await)
        .await
        .unwrap();
    let err = PostgresStore::connect_in_schema(&url, &schema.name, keys)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Incompatible);
}

/// A store at schema version 4 (before the one-call verification) is brought to the current
/// version when an instance opens it, and its factor keeps working through the new function.
#[tokio::test]
async fn a_version_4_schema_gains_the_verification_function() {
    let (url, schema) = server();
    let keys = insecure_key_ring().unwrap();
    let store = PostgresStore::connect_in_schema(&url, &schema.name, keys.clone())
        .await
        .unwrap();
    let alice = enrolled(store.clone(), config()).await;
    store.close().await;
    sqlx::raw_sql(
        "DROP FUNCTION verrou_attempt_totp; DROP FUNCTION verrou_swap_count; \
         ALTER TABLE verrou_audit DROP COLUMN note; ALTER TABLE verrou_audit DROP COLUMN org_id; \
         UPDATE verrou_schema_version SET version = 4",
    )
    .execute(&mut raw(&url, &schema).await)
    .await
    .unwrap();
    let store = PostgresStore::connect_in_schema(&url, &schema.name, keys)
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM verrou_schema_version")
        .fetch_one(&mut raw(&url, &schema).await)
        .await
        .unwrap();
    assert_eq!(version, 7);
    let again = verrou::Verrou::new(store, config()).with_clock(alice.clock.clone());
    let outcome = again
        .verify_totp(
            &alice.user,
            &alice.code(0),
            &verrou::ClientContext::unknown(),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, verrou::TotpOutcome::Accepted(_)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn no_secret_in_clear_in_the_tables() {
    let (url, schema) = server();
    let store = PostgresStore::connect_in_schema(&url, &schema.name, insecure_key_ring().unwrap())
        .await
        .unwrap();
    let e = enrolled(store, config()).await;
    let base32 = e.secret.to_base32().expose_secret().to_owned();
    let raw_secret = secret_bytes(&e.secret);
    let mut conn = raw(&url, &schema).await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM verrou_totp_active")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(KeyRing::sealed_with(&sealed).is_ok());
    assert!(!sealed.windows(raw_secret.len()).any(|w| w == raw_secret));
    // Every column of every row, as text, as a dump would show it.
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM verrou_totp_active t UNION ALL SELECT a::text FROM verrou_audit a",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!dump.is_empty());
    let hex: String = raw_secret.iter().map(|b| format!("{b:02x}")).collect();
    for row in dump {
        let row = row.to_ascii_lowercase();
        assert!(!row.contains(&base32.to_ascii_lowercase()) && !row.contains(&hex));
    }
}

// ---- recovery codes across two instances: the review's race, forced and natural ----------

/// A raw connection holding row locks in an open transaction, as an in-flight writer would,
/// so the operations started next queue up behind it in a known order.
mod held {
    use std::time::Duration;

    use sqlx::{Connection as _, PgConnection};

    use super::{raw, raw_in};
    use crate::support::postgres::Schema;

    pub struct Holder {
        conn: PgConnection,
        pid: i32,
        url: String,
        schema: String,
    }

    impl Holder {
        /// A transaction begun on `schema`, holding nothing yet.
        pub async fn begin(url: &str, schema: &Schema) -> Self {
            let mut conn = raw(url, schema).await;
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            Self {
                conn,
                pid,
                url: url.to_owned(),
                schema: schema.name.clone(),
            }
        }

        /// Holds row locks on alice's current recovery codes.
        pub async fn lock_codes(url: &str, schema: &Schema) -> Self {
            let mut holder = Self::begin(url, schema).await;
            let locked: Vec<String> = sqlx::query_scalar(
                "SELECT lookup FROM verrou_recovery_codes WHERE user_id = 'alice' FOR UPDATE",
            )
            .fetch_all(&mut holder.conn)
            .await
            .unwrap();
            assert!(!locked.is_empty());
            holder
        }

        /// Runs `statement` (bound to `values`) in the held transaction.
        pub async fn run(&mut self, statement: &'static str, values: &[i64]) {
            let mut query = sqlx::query(statement);
            for value in values {
                query = query.bind(*value);
            }
            query.execute(&mut self.conn).await.unwrap();
        }

        /// Waits until `count` backends wait, directly or through one another, on this one
        /// (or until every task in `tasks` has finished: an operation that did not block).
        pub async fn wait_for_blocked<T>(&self, count: i64, tasks: &[&tokio::task::JoinHandle<T>]) {
            let mut observer = raw_in(&self.url, &self.schema).await;
            for _ in 0..600 {
                let blocked: i64 = sqlx::query_scalar(
                    "WITH RECURSIVE blocked(pid) AS ( \
                       SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) \
                       UNION \
                       SELECT a.pid FROM pg_stat_activity a JOIN blocked b \
                         ON b.pid = ANY(pg_blocking_pids(a.pid))) \
                     SELECT count(*) FROM blocked",
                )
                .bind(self.pid)
                .fetch_one(&mut observer)
                .await
                .unwrap();
                if blocked >= count || tasks.iter().all(|task| task.is_finished()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the operations never queued behind the held locks");
        }

        /// Ends the transaction with `how` (`COMMIT` or `ROLLBACK`).
        pub async fn end(mut self, how: &'static str) {
            sqlx::query(how).execute(&mut self.conn).await.unwrap();
            self.conn.close().await.unwrap();
        }
    }
}

/// A verification decides the throttle on the counters it read, and each write of its one
/// call is a compare-and-set against them (see `attempt_call.rs`). These force a counter to
/// change between the read and the write, as another instance's attempts or an operator would.
mod verification_races {
    use verrou::store::PostgresStore;
    use verrou::testing::insecure_key_ring;
    use verrou::{ClientContext, Clock as _, TotpOutcome};

    use super::held::Holder;
    use super::raw;
    use crate::support::postgres::server;
    use crate::support::{config, enrolled};

    const LOCK_ACCOUNT: &str = "UPDATE verrou_throttle SET failures = 1000, last_failure = $1 \
         WHERE throttle_key = 'account:alice'";

    /// The attacker has the password and the right code, after one wrong guess. Another
    /// instance locks the account (a brute force reaching the lockout, an operator) after the
    /// verification read the counter and before it reset it: the code must not be accepted
    /// past the lockout, and its step must stay unused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lockout_committed_under_a_verification_refuses_it() {
        let (url, schema) = server();
        let store =
            PostgresStore::connect_in_schema(&url, &schema.name, insecure_key_ring().unwrap())
                .await
                .unwrap();
        let alice = enrolled(store, config()).await;
        let wrong = alice.verify(&alice.code(5)).await;
        assert!(matches!(wrong, TotpOutcome::Invalid), "{wrong:?}");
        let step_before: i64 = sqlx::query_scalar("SELECT last_step FROM verrou_totp_active")
            .fetch_one(&mut raw(&url, &schema).await)
            .await
            .unwrap();
        let now = i64::try_from(alice.clock.now().unwrap().unix_seconds()).unwrap();
        let mut holder = Holder::begin(&url, &schema).await;
        holder.run(LOCK_ACCOUNT, &[now]).await;
        let verification = {
            let (verrou, user, code) = (alice.verrou.clone(), alice.user.clone(), alice.code(0));
            tokio::spawn(async move {
                verrou
                    .verify_totp(&user, &code, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        };
        holder.wait_for_blocked(1, &[&verification]).await;
        holder.end("COMMIT").await;
        let outcome = verification.await.unwrap();
        assert!(
            matches!(outcome, TotpOutcome::Locked { .. }),
            "a code accepted past a lockout: {outcome:?}"
        );
        let step_after: i64 = sqlx::query_scalar("SELECT last_step FROM verrou_totp_active")
            .fetch_one(&mut raw(&url, &schema).await)
            .await
            .unwrap();
        assert_eq!(
            step_after, step_before,
            "the locked-out code's step was used up"
        );
    }
}

mod recovery_races {
    use std::sync::Arc;
    use verrou::store::PostgresStore;
    use verrou::testing::{insecure_key_ring, insecure_recovery_codes, InsecureManualClock};
    use verrou::{ClientContext, RecoveryOutcome, SecondFactorProof, Verrou, VerrouConfig};

    use super::held::Holder;
    use crate::service::assert_no_code_works;
    use crate::support::postgres::{server, Schema};
    use crate::support::{config, enrolled, Enrolled};

    type Instance = Verrou<PostgresStore, InsecureManualClock>;

    /// Two portal instances on one schema, each with its own pool; `alice` enrolled through
    /// the first, with a fresh proof and a first set of codes.
    struct Portal {
        first: Arc<Instance>,
        second: Arc<Instance>,
        enrolled: Enrolled<PostgresStore>,
        url: String,
        schema: Schema,
    }

    async fn portal(config: VerrouConfig) -> Portal {
        let (url, schema) = server();
        let keys = insecure_key_ring().unwrap();
        let open = || PostgresStore::connect_in_schema(&url, &schema.name, keys.clone());
        let (first, second) = tokio::join!(open(), open());
        let enrolled = enrolled(first.unwrap(), config.clone()).await;
        let second = Verrou::new(second.unwrap(), config).with_clock(enrolled.clock.clone());
        let portal = Portal {
            first: enrolled.verrou.clone(),
            second: Arc::new(second),
            enrolled,
            url,
            schema,
        };
        let proof = portal.fresh_proof().await;
        portal.regenerate(&portal.first, proof).await;
        portal
    }

    impl Portal {
        /// The intruder passes the second factor again: a new proof, good once.
        async fn fresh_proof(&self) -> SecondFactorProof {
            let proof = self.enrolled.accept(&self.enrolled.code(0)).await.proof;
            self.enrolled.advance_steps(1);
            proof
        }

        async fn regenerate(
            &self,
            instance: &Instance,
            proof: SecondFactorProof,
        ) -> Option<Vec<String>> {
            insecure_recovery_codes(instance, proof).await.unwrap()
        }

        /// Regenerates on the first or second instance, with a proof minted beforehand (a
        /// verification writes the factor row a regeneration locks).
        fn spawn_regeneration(
            self: &Arc<Self>,
            second: bool,
            proof: SecondFactorProof,
        ) -> tokio::task::JoinHandle<Option<Vec<String>>> {
            let portal = Arc::clone(self);
            tokio::spawn(async move {
                let instance = if second {
                    &portal.second
                } else {
                    &portal.first
                };
                portal.regenerate(instance, proof).await
            })
        }

        async fn works(&self, code: &str) -> bool {
            let outcome = self
                .second
                .verify_recovery_code(&self.enrolled.user, code, &ClientContext::unknown())
                .await
                .unwrap();
            matches!(outcome, RecoveryOutcome::Accepted { .. })
        }
    }

    /// The review's finding, forced: a regeneration is in flight (its delete waits on the old
    /// codes) when an operator on another instance resets the factor. The reset must leave
    /// no factor and no working code, and the intruder's proof must regenerate nothing after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reset_during_a_regeneration_leaves_no_working_code() {
        let portal = Arc::new(portal(config()).await);
        let (proof, later) = (portal.fresh_proof().await, portal.fresh_proof().await);
        let holder = Holder::lock_codes(&portal.url, &portal.schema).await;
        let regeneration = portal.spawn_regeneration(false, proof);
        holder.wait_for_blocked(1, &[&regeneration]).await;
        let reset = {
            let (second, who) = (portal.second.clone(), portal.enrolled.user.clone());
            tokio::spawn(async move { second.remove_totp_factor(&who).await.unwrap() })
        };
        holder.wait_for_blocked(2, &[&reset]).await;
        holder.end("ROLLBACK").await;
        let shown = regeneration.await.unwrap().unwrap_or_default();
        assert!(reset.await.unwrap());
        assert!(!portal
            .first
            .has_active_totp(&portal.enrolled.user)
            .await
            .unwrap());
        assert_no_code_works(&portal.second, &portal.enrolled.user, &shown).await;
        assert_eq!(portal.regenerate(&portal.second, later).await, None);
        assert_eq!(
            portal
                .first
                .remaining_recovery_codes(&portal.enrolled.user)
                .await
                .unwrap(),
            0
        );
    }

    /// A double submit, forced: two regenerations on two instances overlap. Exactly one set
    /// is stored: the one the later of the two returned; the other's codes do not work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_double_submitted_regeneration_leaves_one_set() {
        let portal = Arc::new(portal(config()).await);
        let (one, two) = (portal.fresh_proof().await, portal.fresh_proof().await);
        let holder = Holder::lock_codes(&portal.url, &portal.schema).await;
        let first = portal.spawn_regeneration(false, one);
        holder.wait_for_blocked(1, &[&first]).await;
        let second = portal.spawn_regeneration(true, two);
        holder.wait_for_blocked(2, &[&second]).await;
        holder.end("ROLLBACK").await;
        let sets = [
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        ];
        let user = &portal.enrolled.user;
        assert_eq!(
            portal.first.remaining_recovery_codes(user).await.unwrap(),
            10
        );
        let works = [
            portal.works(&sets[0][0]).await,
            portal.works(&sets[1][0]).await,
        ];
        assert_eq!(works.iter().filter(|w| **w).count(), 1, "{works:?}");
    }

    /// The same two races, unforced, ten rounds each across the two pools.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn natural_races_leave_one_set_or_none() {
        let small = config().with_recovery_set_size(2).unwrap();
        let portal = Arc::new(portal(small.clone()).await);
        let user = &portal.enrolled.user;
        for round in 0..10 {
            let (one, two) = (portal.fresh_proof().await, portal.fresh_proof().await);
            let a = portal.spawn_regeneration(false, one);
            let b = portal.spawn_regeneration(true, two);
            assert!(a.await.unwrap().is_some() && b.await.unwrap().is_some());
            let left = portal.first.remaining_recovery_codes(user).await.unwrap();
            assert_eq!(left, 2, "round {round}: {left} codes after a double submit");
        }
        for round in 0..10 {
            let portal = Arc::new(super::recovery_races::portal(small.clone()).await);
            let proof = portal.fresh_proof().await;
            let regeneration = portal.spawn_regeneration(false, proof);
            let reset = {
                let (second, who) = (portal.second.clone(), portal.enrolled.user.clone());
                tokio::spawn(async move { second.remove_totp_factor(&who).await.unwrap() })
            };
            let shown = regeneration.await.unwrap().unwrap_or_default();
            assert!(reset.await.unwrap(), "round {round}");
            assert_no_code_works(&portal.second, &portal.enrolled.user, &shown).await;
        }
    }
}
