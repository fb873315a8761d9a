//! The conformance suite on SQLite: one file per case, and the concurrency cases again
//! through two handles (two connection pools) on one file, as two processes would share it.

#![allow(clippy::unwrap_used, clippy::panic)]

use tempfile::TempDir;
use verrou::store::SqliteStore;
use verrou::testing::insecure_key_ring;

use crate::two_handles::TwoHandles;

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

/// A database file for the rotation cases, opened with any key ring.
struct File {
    dir: TempDir,
}

impl crate::rotation::Database for File {
    type Store = SqliteStore;
    async fn try_open(&self, keys: KeyRing) -> Result<SqliteStore, verrou::StoreError> {
        SqliteStore::open(self.dir.path().join("verrou.db"), keys).await
    }
}

async fn make_file() -> File {
    File {
        dir: tempfile::tempdir().unwrap(),
    }
}

rotation_cases!(make_file);

mod two_handles {
    use super::*;
    store_conformance!(concurrency make_two_handles);
}

// ---- SQLite only: schema versions, secrets at rest, restarts ----------------------------

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::sqlite::{raw, raw_exec};
use crate::support::{config, enrolled, secret_bytes, Enrolled};
use secrecy::ExposeSecret;
use verrou::error::StoreErrorKind;
use verrou::store::backend::SessionStore;
use verrou::store::Store;
use verrou::{KeyRing, KeyRingError, TotpOutcome, Verrou};

async fn schema_version(path: &Path) -> i64 {
    sqlx::query_scalar("SELECT version FROM verrou_schema_version")
        .fetch_one(&mut raw(path).await)
        .await
        .unwrap()
}

/// A file in a fresh directory, and a user enrolled in it under `keys`.
struct OnFile {
    e: Enrolled<SqliteStore>,
    path: PathBuf,
    keys: KeyRing,
    _dir: TempDir,
}

async fn enrolled_on_file() -> OnFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verrou.db");
    let keys = insecure_key_ring().unwrap();
    let store = SqliteStore::open(&path, keys.clone()).await.unwrap();
    let e = enrolled(store, config()).await;
    OnFile {
        e,
        path,
        keys,
        _dir: dir,
    }
}

impl OnFile {
    /// Closes the store, as a process exiting would.
    async fn close(&self) {
        self.e.verrou.store().close().await;
    }

    /// The same user and clock over a store reopened on the file (a restart).
    async fn reopen(self) -> (Enrolled<SqliteStore>, TempDir) {
        let store = SqliteStore::open(&self.path, self.keys).await.unwrap();
        let verrou = Verrou::new(store, config()).with_clock(self.e.clock.clone());
        let e = Enrolled {
            verrou: Arc::new(verrou),
            ..self.e
        };
        (e, self._dir)
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let f = enrolled_on_file().await;
    f.close().await;
    raw_exec(
        &f.path,
        "UPDATE verrou_schema_version SET version = version + 1",
    )
    .await;
    let err = SqliteStore::open(&f.path, f.keys.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Incompatible);
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn an_older_schema_is_upgraded_in_place() {
    let f = enrolled_on_file().await;
    f.close().await;
    // Take the database back to schema version 1 (before the audit trail).
    raw_exec(
        &f.path,
        "DROP TABLE verrou_audit; DROP TABLE verrou_sessions; \
         DROP TABLE verrou_session_bindings; DROP TABLE verrou_key_check; \
         UPDATE verrou_schema_version SET version = 1",
    )
    .await;
    assert_eq!(schema_version(&f.path).await, 1);

    let path = f.path.clone();
    let (again, _dir) = f.reopen().await;
    assert_eq!(schema_version(&path).await, 7);
    // The factor written at version 1 still works, and the trail is recorded again.
    again.accept(&again.code(0)).await;
    let trail = again.verrou.audit_trail(None, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    // And sessions work on the upgraded file.
    let browser = again.sign_in(None).await;
    assert!(matches!(
        again
            .status(&browser, verrou::session::Requirement::AnySession)
            .await,
        verrou::SessionStatus::Active(_)
    ));
}

#[tokio::test]
async fn state_survives_a_restart() {
    let f = enrolled_on_file().await;
    let codes = f.e.recovery_codes().await;
    f.e.advance_steps(1);
    let code = f.e.code(0);
    f.e.accept(&code).await;
    f.close().await;

    let (again, _dir) = f.reopen().await;
    assert_eq!(again.verify(&code).await, TotpOutcome::Replayed);
    let remaining = again.verrou.store().remaining_recovery_codes(&again.user);
    assert_eq!(remaining.await.unwrap(), codes.len());
}

#[tokio::test]
async fn no_secret_in_clear_in_the_database_files() {
    let f = enrolled_on_file().await;
    let base32 = f.e.secret.to_base32().expose_secret().as_bytes().to_vec();
    let raw_secret = secret_bytes(&f.e.secret);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM verrou_totp_active")
        .fetch_one(&mut raw(&f.path).await)
        .await
        .unwrap();
    assert!(KeyRing::sealed_with(&sealed).is_ok());
    // The main file and the write-ahead log, as an attacker with a copy of the disk sees them.
    let mut files = 0;
    for entry in std::fs::read_dir(f.path.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for needle in [
            &base32[..],
            &base32.to_ascii_lowercase()[..],
            &raw_secret[..],
        ] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    assert!(files >= 2, "expected the database and its WAL");
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = enrolled_on_file().await;
    // The database and the WAL and shared-memory files SQLite made beside it.
    let mut files = 0;
    for entry in std::fs::read_dir(f.path.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{:?} is {mode:o}", entry.file_name());
        files += 1;
    }
    assert!(files >= 2);
}

#[tokio::test]
async fn another_key_ring_is_refused_when_the_store_opens() {
    let f = enrolled_on_file().await;
    f.close().await;
    // Same key id ("test"), other key bytes.
    let err = SqliteStore::open(&f.path, insecure_key_ring().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::KeyMismatch);
    assert!(err.to_string().contains("key ring does not match"), "{err}");
    let source = err.source().unwrap().downcast_ref::<KeyRingError>();
    assert_eq!(source, Some(&KeyRingError::Authentication));
}

/// A store from before the key check (schema 3) is checked against its secrets: a foreign
/// ring is refused; its own ring passes and writes the check.
#[tokio::test]
async fn a_store_from_before_the_check_is_checked_against_its_secrets() {
    let f = enrolled_on_file().await;
    // A second factor whose secret no key opens any more (a rotation skipped it): the ring
    // still matches, since it opens the others.
    crate::support::enrol(&f.e.verrou, &crate::support::user("bob")).await;
    f.close().await;
    raw_exec(
        &f.path,
        "DROP TABLE verrou_key_check; ALTER TABLE verrou_audit DROP COLUMN note; \
         DROP INDEX verrou_audit_by_org; ALTER TABLE verrou_audit DROP COLUMN org_id; \
         UPDATE verrou_schema_version SET version = 3; \
         UPDATE verrou_totp_active SET sealed = x'01' WHERE user_id = 'bob'",
    )
    .await;
    let err = SqliteStore::open(&f.path, insecure_key_ring().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::KeyMismatch);
    let (again, _dir) = f.reopen().await;
    again.accept(&again.code(0)).await;
    let checks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM verrou_key_check")
        .fetch_one(&mut raw(&_dir.path().join("verrou.db")).await)
        .await
        .unwrap();
    assert_eq!(checks, 1);
}

/// An elevation whose audit record or binding offer cannot be written (a failure injected
/// with a trigger) leaves no ghost: the error reaches the portal, the old password-only
/// cookie still works, and no second-factor session without a usable token remains.
#[tokio::test]
async fn a_failed_elevation_leaves_no_ghost() {
    const FAILURES: [&str; 2] = [
        "CREATE TRIGGER injected BEFORE INSERT ON verrou_audit \
         WHEN NEW.kind = 'session_elevated' BEGIN SELECT RAISE(ABORT, 'injected'); END",
        "CREATE TRIGGER injected BEFORE INSERT ON verrou_session_bindings \
         BEGIN SELECT RAISE(ABORT, 'injected'); END",
    ];
    for failure in FAILURES {
        let f = enrolled_on_file().await;
        let e = &f.e;
        let ctx = verrou::ClientContext::unknown();
        let new = e.verrou.create_session(&e.user, None, &ctx).await.unwrap();
        let token = new.token.expose_secret().to_owned();
        raw_exec(&f.path, failure).await;
        e.advance_steps(1);
        let proof = e.accept(&e.code(0)).await.proof;
        let elevation = e.verrou.record_second_factor(&token, proof, &ctx).await;
        assert!(elevation.is_err(), "{failure}: {elevation:?}");
        let status = e
            .verrou
            .authenticate(
                &verrou::SessionCookies::new(&token, None),
                verrou::session::Requirement::AnySession,
                &ctx,
            )
            .await
            .unwrap();
        let verrou::SessionStatus::Active(session) = status else {
            panic!("{failure}: the old cookie died: {status:?}");
        };
        assert_eq!(session.assurance, verrou::session::Assurance::PasswordOnly);
        let stored = e.verrou.store().user_sessions(&e.user).await.unwrap();
        assert!(
            stored
                .iter()
                .all(|s| s.assurance == verrou::session::Assurance::PasswordOnly),
            "{failure}: {stored:?}"
        );
        f.close().await;
    }
}
