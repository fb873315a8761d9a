//! The PostgreSQL store: several portal instances sharing one database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;

use super::driver::Dialect;
use super::schema::ColumnTypes;
use super::values::backend;
use super::SqlStore;
use crate::error::{StoreError, StoreErrorKind};
use crate::keyring::KeyRing;

/// One migrator at a time across every instance (a transaction-scoped advisory lock).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7403781652)";

/// Connections per store handle (per portal instance).
const MAX_CONNECTIONS: u32 = 10;

/// A store in a PostgreSQL database, shared by every portal instance that connects to it.
///
/// Every operation is one statement or one transaction whose rows are locked before they are
/// read for a write, so instances never lose each other's updates. TOTP secrets are stored
/// sealed under the [`KeyRing`]; recovery codes as argon2id hashes.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host:port/database`) and brings the schema up to
    /// date. The URL may carry a password; it never appears in errors.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] if the server cannot be reached;
    /// [`StoreErrorKind::Incompatible`] if the schema is newer than this version of verrou.
    pub async fn connect(url: &str, keys: KeyRing) -> Result<Self, StoreError> {
        Self::connect_options(options(url)?, keys).await
    }

    /// Like [`PostgresStore::connect`], with verrou's tables in `schema` (created if missing):
    /// one database can then hold several independent stores. `schema` must be 1 to 63 of
    /// `a-z 0-9 _`, starting with a letter or `_`.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`], and [`StoreErrorKind::Backend`] for an invalid schema
    /// name.
    pub async fn connect_in_schema(
        url: &str,
        schema: &str,
        keys: KeyRing,
    ) -> Result<Self, StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                "schema names are 1 to 63 of a-z 0-9 _, not starting with a digit",
            ));
        }
        let base = options(url)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .map_err(backend("connect to PostgreSQL"))?;
        // Concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide: take the migration lock.
        // The name is validated above: it cannot close the quotes.
        let create =
            format!("BEGIN; {MIGRATION_LOCK}; CREATE SCHEMA IF NOT EXISTS \"{schema}\"; COMMIT;");
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&admin)
            .await;
        admin.close().await;
        created.map_err(backend("create the schema"))?;
        Self::connect_options(base.options([("search_path", schema)]), keys).await
    }

    async fn connect_options(options: PgConnectOptions, keys: KeyRing) -> Result<Self, StoreError> {
        // No ping before each use (sqlx's default): it is a round trip of its own on every
        // statement. A connection the server dropped fails its next statement instead, which
        // the caller sees as a store error (the request fails closed) and the pool replaces.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(backend("connect to PostgreSQL"))?;
        Self::from_pools(pool.clone(), pool, keys).await
    }
}

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|_| {
        // The driver's message may quote the URL, password included: drop it.
        StoreError::new(StoreErrorKind::Backend, "the PostgreSQL URL is malformed")
    })
}

fn valid_schema(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl Dialect for Postgres {
    const BEGIN: &'static str = "BEGIN";
    const MIGRATION_LOCK: &'static str = MIGRATION_LOCK;
    const LOCK_ACTIVE_FACTOR: &'static str =
        "SELECT factor_id FROM verrou_totp_active WHERE user_id = $1 FOR UPDATE";
    const LOCK_PENDING_FACTOR: &'static str = "SELECT factor_id, replaces, expires_at \
         FROM verrou_totp_pending WHERE user_id = $1 FOR UPDATE";
    const COLUMN_TYPES: ColumnTypes = ColumnTypes {
        blob: "BYTEA",
        serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}
