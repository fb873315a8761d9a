//! What the SQL store asks of a database driver, and the two small tools every query goes
//! through.
//!
//! [`Dialect`] is what differs between databases, written once per database (`sqlite.rs`,
//! `postgres.rs`): how a write transaction starts, the two locking reads, the migration lock,
//! two type names and the one-call verification. [`Driver`] is what the store needs of sqlx,
//! given once, for every database whose sqlx driver stores verrou's four column types, by one
//! blanket impl: the store's code then needs the single bound `D: Driver`, and no query is
//! written twice.
//!
//! [`Sql`] builds one statement (its text is always a `&'static str`: nothing is formatted
//! per request) and maps a driver error to a [`StoreError`] naming what the statement was
//! for; [`Fields`] reads one row back, a value that does not decode being `Corrupt`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row as _, Type};

use super::schema::Spelling;
use super::values::backend;
use crate::error::{StoreError, StoreErrorKind};

/// One statement of a database `D`, parameters bound as they are added.
pub(crate) type Query<D> = sqlx::query::Query<'static, D, <D as Database>::Arguments>;

/// Where the SQL dialects differ. Everything else is written once, in the dialect both
/// SQLite and PostgreSQL read (`$n` parameters, `ON CONFLICT`, `RETURNING`).
pub(crate) trait Dialect: Database {
    /// Starts a write transaction. SQLite's `BEGIN IMMEDIATE` takes the database's write
    /// lock at once, so no two read-then-write transactions interleave.
    const BEGIN: &'static str;
    /// Run first in the migration transaction, so one migrator runs at a time across
    /// processes; empty where [`Dialect::BEGIN`] already excludes other writers.
    const MIGRATION_LOCK: &'static str;
    /// `factor_id` of the user's (`$1`) active factor, the row locked until the transaction
    /// ends: the per-user lock for activation and for replacing or voiding recovery codes.
    const LOCK_ACTIVE_FACTOR: &'static str;
    /// `factor_id, replaces, expires_at` of the user's (`$1`) pending factor, the row locked
    /// until the transaction ends.
    const LOCK_PENDING_FACTOR: &'static str;
    /// How the migrations spell a binary column, an auto-increment key and the function
    /// behind [`Dialect::ATTEMPT_CALL`].
    const SPELLING: Spelling;
    /// The statement that writes a whole verification in one round trip, given the counters
    /// the caller read and decided on (a compare-and-set; see `factors.rs`), or `None` where
    /// the write transaction costs no round trips (SQLite runs in the process).
    const ATTEMPT_CALL: Option<&'static str>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// What the store needs of an sqlx driver: binding and reading its column types (text,
/// 64-bit integers, bytes, booleans, each possibly `NULL`) and running statements on a
/// connection. Implemented once, below, for every [`Dialect`] whose driver has them.
pub(crate) trait Driver: Dialect {
    fn bind_text(query: Query<Self>, value: Option<String>) -> Query<Self>;
    fn bind_int(query: Query<Self>, value: Option<i64>) -> Query<Self>;
    fn bind_bytes(query: Query<Self>, value: Option<Vec<u8>>) -> Query<Self>;
    fn bind_flag(query: Query<Self>, value: bool) -> Query<Self>;
    fn text(row: &Self::Row, column: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(row: &Self::Row, column: usize) -> Result<Option<i64>, sqlx::Error>;
    fn bytes(row: &Self::Row, column: usize) -> Result<Option<Vec<u8>>, sqlx::Error>;
    fn flag(row: &Self::Row, column: usize) -> Result<bool, sqlx::Error>;
    fn execute(
        query: Query<Self>,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + '_;
    fn fetch_all(
        query: Query<Self>,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + '_;
    /// Runs several statements of verrou's own (the migrations) in one round trip.
    fn run_script(
        script: String,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;
}

impl<D> Driver for D
where
    D: Dialect,
    D::Arguments: IntoArguments<D>,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'t> Option<String>: Encode<'t, D> + Type<D>,
    for<'t> Option<i64>: Encode<'t, D> + Type<D>,
    for<'t> Option<Vec<u8>>: Encode<'t, D> + Type<D>,
    for<'t> bool: Encode<'t, D> + Type<D>,
    for<'r> String: Decode<'r, D>,
    for<'r> i64: Decode<'r, D>,
    for<'r> Vec<u8>: Decode<'r, D>,
    for<'r> bool: Decode<'r, D>,
    usize: ColumnIndex<D::Row>,
{
    fn bind_text(query: Query<Self>, value: Option<String>) -> Query<Self> {
        query.bind(value)
    }
    fn bind_int(query: Query<Self>, value: Option<i64>) -> Query<Self> {
        query.bind(value)
    }
    fn bind_bytes(query: Query<Self>, value: Option<Vec<u8>>) -> Query<Self> {
        query.bind(value)
    }
    fn bind_flag(query: Query<Self>, value: bool) -> Query<Self> {
        query.bind(value)
    }
    fn text(row: &Self::Row, column: usize) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }
    fn int(row: &Self::Row, column: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }
    fn bytes(row: &Self::Row, column: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
        row.try_get(column)
    }
    fn flag(row: &Self::Row, column: usize) -> Result<bool, sqlx::Error> {
        row.try_get(column)
    }
    fn execute(
        query: Query<Self>,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + '_ {
        on.execute(query)
    }
    fn fetch_all(
        query: Query<Self>,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + '_ {
        on.fetch_all(query)
    }
    fn run_script(
        script: String,
        on: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_ {
        // The migrations are schema.rs's static templates with static type names filled in.
        let script = sqlx::raw_sql(sqlx::AssertSqlSafe(script));
        async move { on.execute(script).await.map(|_| ()) }
    }
}

/// One statement: its text, its parameters, and what it is for (the context of its errors).
#[must_use = "a statement does nothing until it is run"]
pub(crate) struct Sql<D: Driver> {
    query: Query<D>,
    context: &'static str,
}

impl<D: Driver> Sql<D> {
    /// The statement `text`, run "to `context`" (e.g. "read the active factor").
    pub(crate) fn new(text: &'static str, context: &'static str) -> Self {
        Self {
            query: sqlx::query(text),
            context,
        }
    }

    pub(crate) fn text(self, value: impl Into<String>) -> Self {
        self.opt_text(Some(value.into()))
    }

    pub(crate) fn opt_text(self, value: Option<String>) -> Self {
        self.with(|query| D::bind_text(query, value))
    }

    pub(crate) fn int(self, value: i64) -> Self {
        self.opt_int(Some(value))
    }

    pub(crate) fn opt_int(self, value: Option<i64>) -> Self {
        self.with(|query| D::bind_int(query, value))
    }

    pub(crate) fn bytes(self, value: Vec<u8>) -> Self {
        self.opt_bytes(Some(value))
    }

    pub(crate) fn opt_bytes(self, value: Option<Vec<u8>>) -> Self {
        self.with(|query| D::bind_bytes(query, value))
    }

    pub(crate) fn flag(self, value: bool) -> Self {
        self.with(|query| D::bind_flag(query, value))
    }

    fn with(self, bind: impl FnOnce(Query<D>) -> Query<D>) -> Self {
        Self {
            query: bind(self.query),
            context: self.context,
        }
    }

    /// Runs the statement; how many rows it changed.
    pub(crate) async fn execute(self, on: &mut D::Connection) -> Result<u64, StoreError> {
        let result = D::execute(self.query, on)
            .await
            .map_err(backend(self.context))?;
        Ok(D::rows_affected(&result))
    }

    /// Runs the statement; every row it returned.
    pub(crate) async fn fetch_all(
        self,
        on: &mut D::Connection,
    ) -> Result<Vec<Fields<D>>, StoreError> {
        let context = self.context;
        let rows = D::fetch_all(self.query, on)
            .await
            .map_err(backend(context))?;
        Ok(rows
            .into_iter()
            .map(|row| Fields { row, context })
            .collect())
    }

    /// Runs a statement that returns at most one row (a lookup by key).
    pub(crate) async fn fetch_optional(
        self,
        on: &mut D::Connection,
    ) -> Result<Option<Fields<D>>, StoreError> {
        Ok(self.fetch_all(on).await?.into_iter().next())
    }

    /// Runs a statement that returns exactly one row (`RETURNING`, `COUNT`).
    pub(crate) async fn fetch_one(self, on: &mut D::Connection) -> Result<Fields<D>, StoreError> {
        let context = self.context;
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::new(StoreErrorKind::Backend, context))
    }
}

/// One row a statement returned, read column by column. A value of the wrong type, or a
/// `NULL` where there must be a value, is `Corrupt`.
pub(crate) struct Fields<D: Driver> {
    row: D::Row,
    context: &'static str,
}

impl<D: Driver> Fields<D> {
    fn present<T>(&self, value: Result<Option<T>, sqlx::Error>) -> Result<T, StoreError> {
        value
            .map_err(backend(self.context))?
            .ok_or_else(|| StoreError::new(StoreErrorKind::Corrupt, "a stored value is missing"))
    }

    pub(crate) fn text(&self, column: usize) -> Result<String, StoreError> {
        self.present(D::text(&self.row, column))
    }

    pub(crate) fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        D::text(&self.row, column).map_err(backend(self.context))
    }

    pub(crate) fn int(&self, column: usize) -> Result<i64, StoreError> {
        self.present(D::int(&self.row, column))
    }

    pub(crate) fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        D::int(&self.row, column).map_err(backend(self.context))
    }

    pub(crate) fn bytes(&self, column: usize) -> Result<Vec<u8>, StoreError> {
        self.present(D::bytes(&self.row, column))
    }

    pub(crate) fn opt_bytes(&self, column: usize) -> Result<Option<Vec<u8>>, StoreError> {
        D::bytes(&self.row, column).map_err(backend(self.context))
    }

    pub(crate) fn flag(&self, column: usize) -> Result<bool, StoreError> {
        D::flag(&self.row, column).map_err(backend(self.context))
    }
}

/// The body of a write transaction ([`SqlStore::write`](super::SqlStore)): a future on the
/// transaction's connection `'t`.
pub(crate) type TxBody<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// Passed to a transaction body beside the connection: its type says that what the body
/// borrows from its caller (`'a`) outlives the connection's borrow (`'t`), which lets the
/// body's future hold those borrows.
pub(crate) type Scope<'t, 'a> = PhantomData<&'t &'a ()>;
