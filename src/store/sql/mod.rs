//! The SQL store, written once as generic code over the database ([`SqlStore<D>`]) and used
//! with SQLite ([`SqliteStore`](sqlite::SqliteStore)) and PostgreSQL
//! ([`PostgresStore`](postgres::PostgresStore)).
//!
//! - `driver.rs`: what differs between the databases (a handful of statements and type
//!   names) and what the store needs of sqlx; the statement builder and row reader.
//! - `factors.rs`: [`Store`](super::Store): factors, verification, recovery codes,
//!   throttle counters, the audit trail.
//! - `attempt_call.rs`: a verification's write as one call, where the dialect has one.
//! - `sessions.rs`: [`SessionStore`](super::SessionStore).
//! - `rotation.rs`: the key check at open and [`KeyRotation`](super::KeyRotation).
//! - `schema.rs`: the migrations; `values.rs`: conversions of stored values.
//!
//! Every operation is a single statement or one write transaction ([`SqlStore::write`]). On
//! SQLite a write transaction starts with `BEGIN IMMEDIATE`, so it holds the database's
//! write lock from its first read: no two read-then-write sequences interleave. On PostgreSQL
//! the rows an operation reads before writing are locked with `SELECT … FOR UPDATE`, and
//! conditional writes are single `UPDATE … WHERE` statements, which PostgreSQL re-checks
//! against the newest row version when a concurrent writer got there first.

mod attempt_call;
mod audit_columns;
mod driver;
mod factors;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod rotation;
mod schema;
mod sessions;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod values;

use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use self::driver::{Driver, Scope, Sql, TxBody};
use self::schema::{pending_migrations, VERSION_TABLE};
use self::values::{account_key, backend, to_db};
use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::ids::UserId;
use crate::keyring::KeyRing;

/// A store in an SQL database `D`: [`SqliteStore`](crate::store::SqliteStore) (`D` =
/// `sqlx::Sqlite`) or [`PostgresStore`](crate::store::PostgresStore) (`D` =
/// `sqlx::Postgres`). Open one through those names; the type parameter only says which
/// database's driver the one implementation runs on.
///
/// TOTP secrets are stored sealed under the [`KeyRing`]; recovery codes as argon2id hashes;
/// session tokens and bound cookies as SHA-256 hashes.
pub struct SqlStore<D: sqlx::Database> {
    /// Single statements (reads, single-row writes).
    pool: Pool<D>,
    /// Write transactions. On SQLite a pool of one connection, so this process's writers
    /// queue here, in order, instead of sleeping in SQLite's busy handler while another holds
    /// the database's write lock; on PostgreSQL, which locks rows, the same pool as `pool`.
    writer: Pool<D>,
    /// Shared by every clone, so a replaced ring ([`KeyRotation::replace_key_ring`]) takes
    /// effect for all of them.
    ///
    /// [`KeyRotation::replace_key_ring`]: crate::store::KeyRotation::replace_key_ring
    keys: Arc<RwLock<KeyRing>>,
}

impl<D: sqlx::Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<D: sqlx::Database> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &D::NAME)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl<D: sqlx::Database> SqlStore<D> {
    /// The key ring in use now (a cheap clone: the keys are shared).
    fn keys(&self) -> KeyRing {
        // A writer never panics while holding the lock (it only swaps a value in), so a
        // poisoned lock still holds a whole ring.
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes every connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

#[allow(private_bounds, reason = "crate-private helpers; Driver is sealed")]
impl<D: Driver> SqlStore<D> {
    /// The schema version the database is at (opening brings it to this build's).
    ///
    /// # Errors
    /// Store failures.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = Sql::<D>::new(
            "SELECT version FROM verrou_schema_version",
            "read the schema version",
        )
        .fetch_one(&mut *self.connection("read the schema version").await?)
        .await?;
        row.int(0)
    }

    /// The store over `pool` (and `writer` for write transactions), its schema brought up to
    /// date and the key ring checked against what it holds; the pools are closed if either
    /// fails.
    async fn from_pools(pool: Pool<D>, writer: Pool<D>, keys: KeyRing) -> Result<Self, StoreError> {
        let store = Self {
            pool,
            writer,
            keys: Arc::new(RwLock::new(keys.clone())),
        };
        let ready = match store.migrate().await {
            Ok(()) => store.check_key_ring(&keys).await,
            Err(error) => Err(error),
        };
        if let Err(error) = ready {
            store.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// A connection for a single statement that reads.
    async fn connection(&self, context: &'static str) -> Result<PoolConnection<D>, StoreError> {
        self.pool.acquire().await.map_err(backend(context))
    }

    /// A connection for a single statement that writes: on SQLite the writers' own, so it
    /// takes its turn with the write transactions.
    async fn write_connection(
        &self,
        context: &'static str,
    ) -> Result<PoolConnection<D>, StoreError> {
        self.writer.acquire().await.map_err(backend(context))
    }

    /// Runs `body` in one write transaction, which always ends explicitly: committed if the
    /// body returns `Ok`, rolled back if it returns `Err`. Never left to `Drop`, which only
    /// queues the rollback until the connection is next used, and so could hold row and
    /// advisory locks meanwhile.
    ///
    /// The body is a closure returning a boxed future on the transaction's connection:
    /// `|tx, _| Box::pin(async move { … })` (the second argument is [`Scope`]).
    async fn write<'a, T, F>(&'a self, context: &'static str, body: F) -> Result<T, StoreError>
    where
        T: Send + 'a,
        F: for<'t> FnOnce(&'t mut D::Connection, Scope<'t, 'a>) -> TxBody<'t, T> + Send + 'a,
    {
        let mut tx = self
            .writer
            .begin_with(D::BEGIN)
            .await
            .map_err(backend(context))?;
        let result = body(&mut tx, PhantomData).await;
        finish(tx, result).await
    }

    /// Brings the schema to the version this build writes (`schema::SCHEMA_VERSION`) in
    /// one write transaction (concurrent openers wait for it), or refuses a newer one.
    async fn migrate(&self) -> Result<(), StoreError> {
        self.write("migrate the schema", |tx, _| {
            Box::pin(async move {
                if !D::MIGRATION_LOCK.is_empty() {
                    Sql::<D>::new(D::MIGRATION_LOCK, "lock the schema for migration")
                        .execute(tx)
                        .await?;
                }
                Sql::<D>::new(VERSION_TABLE, "create the schema version table")
                    .execute(tx)
                    .await?;
                let current = Sql::<D>::new(
                    "SELECT version FROM verrou_schema_version",
                    "read the schema version",
                )
                .fetch_optional(tx)
                .await?;
                let current = match current {
                    Some(row) => row.int(0)?,
                    None => 0,
                };
                for (version, script) in pending_migrations(current, &D::SPELLING)? {
                    // A migration may be empty in one dialect (a function only one has).
                    if !script.trim().is_empty() {
                        D::run_script(script, tx)
                            .await
                            .map_err(backend("apply a schema migration"))?;
                    }
                    Sql::<D>::new(
                        "INSERT INTO verrou_schema_version (singleton, version) VALUES (1, $1) \
                         ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                        "record the schema version",
                    )
                    .int(version)
                    .execute(tx)
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// Ends a write transaction: commits after `Ok`, rolls back after `Err`.
async fn finish<D: Driver, T>(
    tx: Transaction<'static, D>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(backend("commit"))?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                // The connection is broken; the server ends the transaction.
                tracing::warn!(target: "verrou::store", %rollback, "rollback failed");
            }
            Err(error)
        }
    }
}

/// Appends `event` to the audit trail.
async fn insert_audit<D: Driver>(
    on: &mut D::Connection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    bind_audit(
        Sql::<D>::new(
            "INSERT INTO verrou_audit (at, user_id, client, kind, factor_id, value, detail, \
             session_id, note, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            "record an audit event",
        ),
        event,
    )?
    // The note and the organisation, which the one-call verification's accepted record
    // never has.
    .opt_text(event.kind.to_columns().note)
    .opt_text(event.org.as_ref().map(|org| org.as_str().to_owned()))
    .execute(on)
    .await?;
    Ok(())
}

/// Binds `event` as the next eight parameters of `sql`, in the order of `verrou_audit`'s
/// columns `at, user_id, client, kind, factor_id, value, detail, session_id` (the
/// statements that store an event name them in that order; `note`, which only an operator
/// command fills, and `org_id`, which only session events fill, are bound after them by
/// `insert_audit`).
fn bind_audit<D: Driver>(sql: Sql<D>, event: &AuditEvent) -> Result<Sql<D>, StoreError> {
    let columns = event.kind.to_columns();
    Ok(sql
        .int(to_db(event.at.unix_seconds())?)
        .text(event.user.as_str())
        .opt_text(event.client.map(|addr| addr.to_string()))
        .text(event.kind.name())
        .opt_text(columns.factor.map(|id| id.to_string()))
        .opt_int(columns.value.map(to_db).transpose()?)
        .opt_int(columns.detail)
        .opt_text(columns.session.map(|id| id.to_string())))
}

/// Resets the user's account throttle (a success).
async fn reset_account<D: Driver>(on: &mut D::Connection, user: &UserId) -> Result<(), StoreError> {
    Sql::<D>::new(
        "DELETE FROM verrou_throttle WHERE throttle_key = $1",
        "reset the account throttle",
    )
    .text(account_key(user))
    .execute(on)
    .await?;
    Ok(())
}
