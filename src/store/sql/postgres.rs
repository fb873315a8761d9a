//! The PostgreSQL store: several portal instances sharing one database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;

use super::driver::Dialect;
use super::schema::Spelling;
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
    const SPELLING: Spelling = Spelling {
        blob: "BYTEA",
        serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        attempt_function: ATTEMPT_FUNCTION,
    };
    const ATTEMPT_CALL: Option<&'static str> = Some(
        "SELECT verdict, address_failures, address_last, account_failures, account_last \
         FROM verrou_attempt_totp($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21)",
    );

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A verification's whole write as one call (`Dialect::ATTEMPT_CALL`): one round trip instead
/// of a transaction's eight, and no row lock on the path a success takes.
///
/// The caller decided both throttle counters in Rust on the state it believes they have
/// (`*_seen`; absent reads as zero failures at time 0) and passes what to write (`*_next`).
/// The function reads both; if either is not what the caller saw it writes nothing and
/// answers `changed` with what it found, and the caller decides again (the throttle policy
/// stays in Rust). Otherwise it is the locking transaction's body, each write a
/// compare-and-set against the state the decision was made on:
/// - the step's conditional update; if it moved, the account counter's reset (a delete that
///   only matches the counter as read: a zero counter needs none, and a failure counted
///   concurrently then stays, ordered after this success) and the audit record (`a_*`, the
///   columns of `verrou_audit`): `advanced`;
/// - if not (`already_used`, `no_such_factor`) or with no step to try (`counted`), both
///   counts, each written only over the state read (`verrou_swap_count`).
///
/// A compare-and-set that misses once a write is made raises `serialization_failure`, which
/// undoes the whole call: the caller sees `Contention` and takes the locking transaction.
const ATTEMPT_FUNCTION: &str = r"
CREATE FUNCTION verrou_attempt_totp(
    p_user TEXT, p_factor TEXT, p_step BIGINT,
    p_address TEXT, p_address_seen BIGINT, p_address_seen_at BIGINT,
    p_address_next BIGINT, p_address_next_at BIGINT,
    p_account TEXT, p_account_seen BIGINT, p_account_seen_at BIGINT,
    p_account_next BIGINT, p_account_next_at BIGINT,
    a_at BIGINT, a_user TEXT, a_client TEXT, a_kind TEXT, a_factor TEXT, a_value BIGINT,
    a_detail BIGINT, a_session TEXT,
    OUT verdict TEXT, OUT address_failures BIGINT, OUT address_last BIGINT,
    OUT account_failures BIGINT, OUT account_last BIGINT
) LANGUAGE plpgsql AS $verrou$
BEGIN
    -- The counters as they stand (an absent counter reads as zero failures at time 0).
    SELECT coalesce(max(failures) FILTER (WHERE throttle_key = p_address), 0),
           coalesce(max(last_failure) FILTER (WHERE throttle_key = p_address), 0),
           coalesce(max(failures) FILTER (WHERE throttle_key = p_account), 0),
           coalesce(max(last_failure) FILTER (WHERE throttle_key = p_account), 0)
    INTO address_failures, address_last, account_failures, account_last
    FROM verrou_throttle WHERE throttle_key IN (p_address, p_account);
    IF (p_address IS NOT NULL
            AND (address_failures <> p_address_seen OR address_last <> p_address_seen_at))
        OR account_failures <> p_account_seen OR account_last <> p_account_seen_at THEN
        verdict := 'changed';
        RETURN;
    END IF;
    verdict := 'counted';
    IF p_step IS NOT NULL THEN
        UPDATE verrou_totp_active SET last_step = p_step
        WHERE user_id = p_user AND factor_id = p_factor AND last_step < p_step;
        IF FOUND THEN
            IF account_failures <> 0 OR account_last <> 0 THEN
                DELETE FROM verrou_throttle WHERE throttle_key = p_account
                AND failures = account_failures AND last_failure = account_last;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                        MESSAGE = 'a throttle counter moved during a verification';
                END IF;
            END IF;
            INSERT INTO verrou_audit (at, user_id, client, kind, factor_id, value, detail,
                session_id)
            VALUES (a_at, a_user, a_client, a_kind, a_factor, a_value, a_detail, a_session);
            verdict := 'advanced';
            RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM verrou_totp_active
                   WHERE user_id = p_user AND factor_id = p_factor) THEN
            verdict := 'already_used';
        ELSE
            verdict := 'no_such_factor';
        END IF;
    END IF;
    IF p_address IS NOT NULL THEN
        PERFORM verrou_swap_count(p_address, p_address_seen, p_address_seen_at,
            p_address_next, p_address_next_at);
    END IF;
    PERFORM verrou_swap_count(p_account, p_account_seen, p_account_seen_at,
        p_account_next, p_account_next_at);
END
$verrou$;
CREATE FUNCTION verrou_swap_count(
    p_key TEXT, p_seen BIGINT, p_seen_at BIGINT, p_next BIGINT, p_next_at BIGINT
) RETURNS VOID LANGUAGE plpgsql AS $verrou$
BEGIN
    INSERT INTO verrou_throttle AS t (throttle_key, failures, last_failure)
    VALUES (p_key, p_next, p_next_at)
    ON CONFLICT (throttle_key) DO UPDATE
    SET failures = excluded.failures, last_failure = excluded.last_failure
    WHERE t.failures = p_seen AND t.last_failure = p_seen_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'a throttle counter moved during a verification';
    END IF;
END
$verrou$;
";
