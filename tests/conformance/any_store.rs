//! The conformance suite on `AnyStore` (the backend chosen by URL at run time), holding a
//! SQLite file: every operation goes through its delegation. And `AnyStore::open` itself.

#![allow(clippy::unwrap_used, clippy::panic)]

use tempfile::TempDir;
use verrou::store::backend::SessionStore;
use verrou::store::AnyStore;
use verrou::testing::insecure_key_ring;

async fn make_store() -> (AnyStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("verrou.db").display());
    let store = AnyStore::open(&url, insecure_key_ring().unwrap())
        .await
        .unwrap();
    assert!(matches!(store, AnyStore::Sqlite(_)));
    (store, dir)
}

store_conformance!(make_store);

#[tokio::test]
async fn any_store_opens_postgres_by_url_and_refuses_other_schemes() {
    let (url, schema) = crate::support::postgres::server();
    let keys = insecure_key_ring().unwrap();
    // The test's own schema (made by connect_in_schema), then reached by URL alone.
    verrou::store::PostgresStore::connect_in_schema(&url, &schema.name, keys.clone())
        .await
        .unwrap();
    let in_schema = format!("{url}?options=-c%20search_path%3D{}", schema.name);
    let store = AnyStore::open(&in_schema, keys).await.unwrap();
    assert!(matches!(store, AnyStore::Postgres(_)));
    let none = store
        .user_sessions(&verrou::UserId::new("nobody").unwrap())
        .await
        .unwrap();
    assert!(none.is_empty());
    for bad in ["mysql://db", "sqlite", "/var/lib/verrou.db", ""] {
        let error = AnyStore::open(bad, insecure_key_ring().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            verrou::error::StoreErrorKind::Incompatible,
            "{bad}"
        );
    }
}
