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
