//! The conformance suite on SQLite: one file per case, and the concurrency cases again
//! through two handles (two connection pools) on one file, as two processes would share it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod conformance;

use tempfile::TempDir;
use verrou::store::SqliteStore;
use verrou::testing::insecure_key_ring;

use conformance::two_handles::TwoHandles;

async fn make_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("verrou.db"), insecure_key_ring().unwrap())
        .await
        .unwrap();
    (store, dir)
}

async fn make_two_handles() -> (TwoHandles<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (path, keys) = (dir.path().join("verrou.db"), insecure_key_ring().unwrap());
    let first = SqliteStore::open(&path, keys.clone()).await.unwrap();
    let second = SqliteStore::open(&path, keys).await.unwrap();
    (TwoHandles::new(first, second), dir)
}

store_conformance!(make_store);

mod two_handles {
    use super::*;
    store_conformance!(concurrency make_two_handles);
}

// ---- SQLite only: schema versions, secrets at rest, restarts ----------------------------

use std::error::Error as _;
use std::path::Path;

use conformance::{config, enrolled, Enrolled};
use secrecy::ExposeSecret;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use verrou::error::StoreErrorKind;
use verrou::{KeyRing, KeyRingError, TotpOutcome};

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

async fn schema_version(path: &Path) -> i64 {
    sqlx::query_scalar("SELECT version FROM verrou_schema_version")
        .fetch_one(&mut raw(path).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    SqliteStore::open(&path, insecure_key_ring().unwrap())
        .await
        .unwrap()
        .close()
        .await;
    let mut conn = raw(&path).await;
    sqlx::query("UPDATE verrou_schema_version SET version = version + 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = SqliteStore::open(&path, insecure_key_ring().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Incompatible);
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn an_older_schema_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    let keys = insecure_key_ring().unwrap();
    let e = enrolled(
        SqliteStore::open(&path, keys.clone()).await.unwrap(),
        config(),
    )
    .await;
    e.verrou.store().close().await;
    // Take the database back to schema version 1 (before the audit trail).
    let mut conn = raw(&path).await;
    sqlx::raw_sql("DROP TABLE verrou_audit; UPDATE verrou_schema_version SET version = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(schema_version(&path).await, 1);

    let store = SqliteStore::open(&path, keys).await.unwrap();
    assert_eq!(schema_version(&path).await, 2);
    let again = Enrolled {
        verrou: std::sync::Arc::new(
            verrou::Verrou::new(store, config()).with_clock(e.clock.clone()),
        ),
        ..e
    };
    // The factor written at version 1 still works, and the trail is recorded again.
    again.accept(&again.code(0)).await;
    let trail = again.verrou.audit_trail(None, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    let keys = insecure_key_ring().unwrap();
    let e = enrolled(
        SqliteStore::open(&path, keys.clone()).await.unwrap(),
        config(),
    )
    .await;
    let codes = e.recovery_codes().await;
    e.advance_steps(1);
    let code = e.code(0);
    e.accept(&code).await;
    e.verrou.store().close().await;

    let store = SqliteStore::open(&path, keys).await.unwrap();
    let again = Enrolled {
        verrou: std::sync::Arc::new(
            verrou::Verrou::new(store, config()).with_clock(e.clock.clone()),
        ),
        ..e
    };
    assert_eq!(again.verify(&code).await, TotpOutcome::Replayed);
    let store = again.verrou.store();
    assert_eq!(store_remaining(store, &again.user).await, codes.len());
}

async fn store_remaining(store: &SqliteStore, user: &verrou::UserId) -> usize {
    use verrou::store::Store;
    store.remaining_recovery_codes(user).await.unwrap()
}

#[tokio::test]
async fn no_secret_in_clear_in_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    let e = enrolled(
        SqliteStore::open(&path, insecure_key_ring().unwrap())
            .await
            .unwrap(),
        config(),
    )
    .await;
    let base32 = e.secret.to_base32();
    let base32 = base32.expose_secret().as_bytes().to_vec();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM verrou_totp_active")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert!(KeyRing::sealed_with(&sealed).is_ok());
    // The main file and the write-ahead log, as an attacker with a copy of the disk sees them.
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for needle in [&base32[..], &base32.to_ascii_lowercase()[..]] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        let raw_secret = raw_secret_bytes(&e);
        assert!(!bytes.windows(raw_secret.len()).any(|w| w == raw_secret));
    }
    assert!(files >= 2, "expected the database and its WAL");
}

/// The secret's raw bytes, from its Base32 form (the crate never hands them out).
fn raw_secret_bytes<S: verrou::store::Store>(e: &Enrolled<S>) -> Vec<u8> {
    let text = e.secret.to_base32();
    base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        text.expose_secret(),
    )
    .unwrap()
}

#[tokio::test]
async fn another_key_ring_gets_a_typed_error_not_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    let e = enrolled(
        SqliteStore::open(&path, insecure_key_ring().unwrap())
            .await
            .unwrap(),
        config(),
    )
    .await;
    e.verrou.store().close().await;
    let store = SqliteStore::open(&path, insecure_key_ring().unwrap())
        .await
        .unwrap();
    use verrou::store::Store;
    // Same key id ("test"), other key bytes: authentication fails.
    let err = store.active_totp(&e.user).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    let source = err.source().unwrap().downcast_ref::<KeyRingError>();
    assert_eq!(source, Some(&KeyRingError::Authentication));
}
