//! The SQLite store: the embedded default. One file, nothing to install.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;

use super::driver::Dialect;
use super::schema::Spelling;
use super::values::backend;
use super::SqlStore;
use crate::error::{StoreError, StoreErrorKind};
use crate::keyring::KeyRing;

/// How long a writer waits for another writer's lock before reporting contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections for single statements; write transactions have one of their own.
const MAX_CONNECTIONS: u32 = 4;

/// A store in one SQLite file, in WAL mode with `synchronous=FULL`: a transaction that
/// returned is on disk, even across a power cut (see the README's durability section).
///
/// Several processes may open the same file; every operation is one `BEGIN IMMEDIATE`
/// transaction or one statement, so they stay atomic across processes. TOTP secrets are
/// stored sealed under the [`KeyRing`]; recovery codes as argon2id hashes.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating it if needed) the database file at `path` and brings its schema up to
    /// date. A new file is created readable and writable by its owner only (on Unix; SQLite
    /// gives its `-wal` and `-shm` files the same permissions).
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](crate::error::StoreErrorKind::Unavailable) if the file
    /// cannot be opened; [`StoreErrorKind::Incompatible`](crate::error::StoreErrorKind::Incompatible)
    /// if its schema is newer than this version of verrou.
    pub async fn open(path: impl AsRef<Path>, keys: KeyRing) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // No ping before each use (sqlx's default): a file has no server to drop the
        // connection, and the ping is a trip to the connection's thread on every statement.
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(backend("open the SQLite database"))?;
        // SQLite has one writer at a time: this process's write transactions take turns on
        // one connection (other processes still wait for the lock with the busy timeout).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await;
        let writer = match writer {
            Ok(writer) => writer,
            Err(error) => {
                pool.close().await;
                return Err(backend("open the SQLite database")(error));
            }
        };
        Self::from_pools(pool, writer, keys).await
    }
}

/// Creates `path` as an empty file only its owner can read and write, unless it exists. One
/// system call at start-up, so it runs inline.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::with_source(
            StoreErrorKind::Unavailable,
            "create the SQLite database file",
            e,
        )),
    }
}

impl Dialect for Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // BEGIN IMMEDIATE already excludes every other writer, and locks every row it reads.
    const MIGRATION_LOCK: &'static str = "";
    const LOCK_ACTIVE_FACTOR: &'static str =
        "SELECT factor_id FROM verrou_totp_active WHERE user_id = $1";
    const LOCK_PENDING_FACTOR: &'static str =
        "SELECT factor_id, replaces, expires_at FROM verrou_totp_pending WHERE user_id = $1";
    const SPELLING: Spelling = Spelling {
        blob: "BLOB",
        serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
        attempt_function: "",
    };
    // A write transaction is no round trip here: the verification runs in one.
    const ATTEMPT_CALL: Option<&'static str> = None;

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}
