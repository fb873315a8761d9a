//! The conformance suite on PostgreSQL, each case in a schema of its own that is dropped
//! afterwards; the concurrency cases again through two stores with separate connection
//! pools, as two portal instances would run.
//!
//! The server comes from `VERROU_TEST_POSTGRES_URL` (the README's test command sets it to the
//! local server). Unset, these tests fail and say so: they never pass without a server.

#![allow(clippy::unwrap_used, clippy::panic)]

mod conformance;

use verrou::store::PostgresStore;
use verrou::testing::insecure_key_ring;

use conformance::postgres::{server, Schema};
use conformance::two_handles::TwoHandles;

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

impl conformance::rotation::Database for InSchema {
    type Store = PostgresStore;
    async fn open(&self, keys: KeyRing) -> PostgresStore {
        PostgresStore::connect_in_schema(&self.url, &self.schema.name, keys)
            .await
            .unwrap()
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

use conformance::{config, enrolled, secret_bytes};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use verrou::error::StoreErrorKind;
use verrou::KeyRing;

async fn raw(url: &str, schema: &Schema) -> PgConnection {
    let options: PgConnectOptions = url.parse().unwrap();
    options
        .options([("search_path", schema.name.as_str())])
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
