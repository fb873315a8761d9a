//! What the SQL backends share: the [`Store`](super::Store) implementation, written once here
//! and instantiated for each driver by `impl_sql_store!`; the schema (`schema.rs`); value
//! conversions and error mapping (`values.rs`).
//!
//! Every operation is a single statement or one write transaction. On SQLite a write
//! transaction starts with `BEGIN IMMEDIATE`, so it holds the database's write lock from its
//! first read: no two read-then-write sequences interleave. On PostgreSQL the rows an
//! operation reads before writing are locked with `SELECT … FOR UPDATE`, and conditional
//! writes are single `UPDATE … WHERE` statements, which PostgreSQL re-checks against the
//! newest row version when a concurrent writer got there first.

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod schema;
mod sessions;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod values;

pub(crate) use self::schema::{pending_migrations, Dialect, VERSION_TABLE};
pub(crate) use self::sessions::impl_sql_sessions;
pub(crate) use self::values::{
    account_key, audit_event, backend, code, factor_id, failures, from_code, from_db,
    key_check_value, org_id, params, sealing, session_id, timestamp, to_db, token_hash, user_id,
};

/// Implements [`Store`](crate::store::Store) for `$store` (with fields `pool: Pool<$db>` and
/// `keys: KeyRing`). `$begin` starts a write transaction; `$lock` is appended to the
/// `SELECT`s that read a row the transaction then writes.
macro_rules! impl_sql_store {
    (
        $store:ty,
        $db:ty,
        begin = $begin:literal,
        lock = $lock:literal,
        migration_lock = $migration_lock:expr,
        dialect = $dialect:expr
    ) => {
        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store))
                    .field("keys", &self.keys)
                    .finish_non_exhaustive()
            }
        }

        impl $store {
            /// Re-seals one stored secret under the active key if its row still holds
            /// `sealed` (compare-and-set): `Ok(Ok(false))` if a concurrent writer changed it,
            /// `Ok(Err(reason))` if the blob cannot be opened.
            async fn reseal_row(
                &self,
                update: &'static str,
                user: &str,
                factor: &str,
                sealed: &[u8],
            ) -> Result<Result<bool, $crate::keyring::KeyRingError>, $crate::error::StoreError>
            {
                use $crate::keyring::KeyRingError;
                use $crate::store::sql::{backend, factor_id, user_id};
                // Ids that do not parse cannot have sealed this blob's associated data.
                let (Ok(user_id), Ok(factor_id)) = (user_id(user), factor_id(factor)) else {
                    return Ok(Err(KeyRingError::Authentication));
                };
                let resealed = self
                    .keys
                    .open(sealed, &user_id, &factor_id)
                    .and_then(|secret| self.keys.seal(&secret, &user_id, &factor_id));
                let resealed = match resealed {
                    Ok(resealed) => resealed,
                    Err(reason) => return Ok(Err(reason)),
                };
                let swapped = sqlx::query(update)
                    .bind(user)
                    .bind(factor)
                    .bind(sealed)
                    .bind(resealed)
                    .execute(&self.pool)
                    .await
                    .map_err(backend("re-seal a TOTP secret"))?
                    .rows_affected();
                Ok(Ok(swapped == 1))
            }

            /// Appends `event` to the audit trail, through the pool or inside a transaction.
            async fn insert_audit<'e, E>(
                executor: E,
                event: $crate::audit::AuditEvent,
            ) -> Result<(), $crate::error::StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                use $crate::store::sql::{backend, to_db};
                let columns = event.kind.to_columns();
                sqlx::query(
                    "INSERT INTO verrou_audit (at, user_id, client, kind, factor_id, value, \
                     detail, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(to_db(event.at.unix_seconds())?)
                .bind(event.user.as_str())
                .bind(event.client.map(|addr| addr.to_string()))
                .bind(event.kind.name())
                .bind(columns.factor.map(|id| id.to_string()))
                .bind(columns.value.map(to_db).transpose()?)
                .bind(columns.detail)
                .bind(columns.session.map(|id| id.to_string()))
                .execute(executor)
                .await
                .map_err(backend("record an audit event"))?;
                Ok(())
            }

            /// How many unused recovery codes `user` has, through the pool or inside a
            /// transaction.
            async fn count_unused<'e, E>(
                executor: E,
                user: &$crate::ids::UserId,
            ) -> Result<usize, $crate::error::StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                use $crate::store::sql::{backend, from_db};
                let remaining: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM verrou_recovery_codes WHERE user_id = $1 AND NOT used",
                )
                .bind(user.as_str())
                .fetch_one(executor)
                .await
                .map_err(backend("count recovery codes"))?;
                Ok(usize::try_from(from_db(remaining)?).unwrap_or(usize::MAX))
            }

            /// The store over `pool`, its schema brought up to date; the pool is closed if
            /// that fails.
            async fn from_pool(
                pool: sqlx::Pool<$db>,
                keys: $crate::keyring::KeyRing,
            ) -> Result<Self, $crate::error::StoreError> {
                let store = Self { pool, keys };
                let ready = match store.migrate().await {
                    Ok(()) => store.check_key_ring().await,
                    Err(error) => Err(error),
                };
                if let Err(error) = ready {
                    store.close().await;
                    return Err(error);
                }
                Ok(store)
            }

            /// Refuses a key ring that cannot open what the store holds: the key check sealed
            /// when the store was first opened or, in a store from before the check, any
            /// active factor's secret. Writes the key check when there is none yet.
            async fn check_key_ring(&self) -> Result<(), $crate::error::StoreError> {
                use $crate::error::{StoreError, StoreErrorKind};
                use $crate::keyring::KeyRingError;
                use $crate::store::sql::{backend, factor_id, sealing, user_id};
                // The key check if there is one; in a store from before it, up to 16 active
                // factors, of which the right ring opens at least one (a rotation may have
                // left one it could not open), and a foreign ring none.
                let check = sqlx::query(
                    "SELECT user_id, factor_id, sealed FROM verrou_key_check LIMIT 1",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(backend("read the key check"))?;
                let checked = !check.is_empty();
                let rows = if checked {
                    check
                } else {
                    sqlx::query("SELECT user_id, factor_id, sealed FROM verrou_totp_active LIMIT 16")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(backend("read the key check"))?
                };
                let mut refusal = None;
                let mut opened = rows.is_empty();
                for row in &rows {
                    let (user, factor, sealed) = Self::sealed_row(row, "decode the key check")?;
                    let (user, factor) = (user_id(&user)?, factor_id(&factor)?);
                    match self.keys.open(&sealed, &user, &factor) {
                        Ok(_) => {
                            opened = true;
                            break;
                        }
                        Err(error @ (KeyRingError::UnknownKey | KeyRingError::Authentication)) => {
                            refusal = Some(error);
                        }
                        Err(error) if checked => {
                            return Err(sealing("open the key check")(error));
                        }
                        Err(error) => refusal = Some(error),
                    }
                }
                if !opened {
                    return Err(StoreError::with_source(
                        StoreErrorKind::KeyMismatch,
                        "the key ring does not match this store: none of its keys opens the \
                         store's secrets (check VERROU_KEYS)",
                        refusal.unwrap_or(KeyRingError::Authentication),
                    ));
                }
                if !checked {
                    let (user, factor, secret) = $crate::store::sql::key_check_value()?;
                    let sealed = self
                        .keys
                        .seal(&secret, &user, &factor)
                        .map_err(sealing("seal the key check"))?;
                    sqlx::query(
                        "INSERT INTO verrou_key_check (user_id, factor_id, sealed) \
                         VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING",
                    )
                    .bind(user.as_str())
                    .bind(factor.to_string())
                    .bind(sealed)
                    .execute(&self.pool)
                    .await
                    .map_err(backend("write the key check"))?;
                }
                Ok(())
            }

            /// A `(user_id, factor_id, sealed)` row as stored, ids not yet parsed.
            fn sealed_row(
                row: &<$db as sqlx::Database>::Row,
                context: &'static str,
            ) -> Result<(String, String, Vec<u8>), $crate::error::StoreError> {
                use sqlx::Row as _;
                let decode = || $crate::store::sql::backend(context);
                Ok((
                    row.try_get(0).map_err(decode())?,
                    row.try_get(1).map_err(decode())?,
                    row.try_get(2).map_err(decode())?,
                ))
            }

            /// Re-seals the key check under the active key (part of a rotation, not counted
            /// in its report). Left as it is if it cannot be opened or changed meanwhile.
            async fn reseal_key_check(&self) -> Result<(), $crate::error::StoreError> {
                let row = sqlx::query("SELECT user_id, factor_id, sealed FROM verrou_key_check")
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::sql::backend("read the key check"))?;
                let Some(row) = row else { return Ok(()) };
                let (user, factor, sealed) = Self::sealed_row(&row, "decode the key check")?;
                if $crate::keyring::KeyRing::sealed_with(&sealed).ok().as_ref()
                    == Some(self.keys.active_id())
                {
                    return Ok(());
                }
                let update = "UPDATE verrou_key_check SET sealed = $4 \
                              WHERE user_id = $1 AND factor_id = $2 AND sealed = $3";
                // A check that does not open is reported when a store opens, not here.
                let _ = self.reseal_row(update, &user, &factor, &sealed).await?;
                Ok(())
            }

            /// Closes every connection; later operations fail.
            pub async fn close(&self) {
                self.pool.close().await;
            }

            /// Brings the schema to the version this build writes (`schema::SCHEMA_VERSION`) in
            /// one write transaction (concurrent openers wait for it), or refuses a newer one.
            async fn migrate(&self) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::{backend, pending_migrations, VERSION_TABLE};
                let mut tx = self.write("migrate the schema").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    if !$migration_lock.is_empty() {
                        sqlx::query($migration_lock)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("lock the schema for migration"))?;
                    }
                    sqlx::query(VERSION_TABLE)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("create the schema version table"))?;
                    let current: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM verrou_schema_version")
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(backend("read the schema version"))?;
                    for (version, sql) in pending_migrations(current.unwrap_or(0), &$dialect)? {
                        // Built from schema.rs's static templates and static type names only.
                        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("apply a schema migration"))?;
                        sqlx::query(
                            "INSERT INTO verrou_schema_version (singleton, version) VALUES (1, $1) \
                             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                        )
                        .bind(version)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("record the schema version"))?;
                    }
                    Ok(())
                }
                .await;
                Self::finish(tx, result).await
            }

            fn throttle_state(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::lockout::ThrottleState, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{backend, failures, timestamp};
                let decode = || backend("decode a throttle counter");
                Ok($crate::lockout::ThrottleState {
                    failures: failures(row.try_get(0).map_err(decode())?)?,
                    last_failure: timestamp(row.try_get(1).map_err(decode())?)?,
                })
            }

            async fn write(
                &self,
                context: &'static str,
            ) -> Result<sqlx::Transaction<'static, $db>, $crate::error::StoreError> {
                self.pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::store::sql::backend(context))
            }

            fn totp_params(
                row: &<$db as sqlx::Database>::Row,
                first: usize,
            ) -> Result<$crate::totp::TotpParams, $crate::error::StoreError> {
                use sqlx::Row as _;
                let decode = || $crate::store::sql::backend("decode TOTP parameters");
                let algorithm: String = row.try_get(first).map_err(decode())?;
                let digits: i64 = row.try_get(first + 1).map_err(decode())?;
                let period: i64 = row.try_get(first + 2).map_err(decode())?;
                $crate::store::sql::params(&algorithm, digits, period)
            }

            fn open_secret(
                &self,
                sealed: &[u8],
                user: &$crate::ids::UserId,
                factor: &$crate::ids::FactorId,
            ) -> Result<$crate::secret::TotpSecret, $crate::error::StoreError> {
                self.keys
                    .open(sealed, user, factor)
                    .map_err($crate::store::sql::sealing("open a stored TOTP secret"))
            }

            /// Resets the account throttle inside `tx` (a success).
            async fn reset_account(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &$crate::ids::UserId,
            ) -> Result<(), $crate::error::StoreError> {
                sqlx::query("DELETE FROM verrou_throttle WHERE throttle_key = $1")
                    .bind($crate::store::sql::account_key(user))
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::store::sql::backend("reset the account throttle"))?;
                Ok(())
            }

            /// Locks the user's active factor row until `tx` ends and returns its factor id
            /// (`None` if there is none). Activation reads the factor it replaces through it,
            /// and it is the per-user lock for replacing or voiding recovery codes.
            async fn lock_active_factor(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &$crate::ids::UserId,
            ) -> Result<Option<String>, $crate::error::StoreError> {
                sqlx::query_scalar(concat!(
                    "SELECT factor_id FROM verrou_totp_active WHERE user_id = $1",
                    $lock
                ))
                .bind(user.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err($crate::store::sql::backend("lock the active factor"))
            }

            /// Counts one attempt on the counter `key` inside `tx`, if its gate is open
            /// ([`Reservation::decide`](crate::store::Reservation::decide)).
            async fn reserve_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                key: &str,
                policy: &$crate::lockout::ThrottlePolicy,
                now: $crate::clock::Timestamp,
            ) -> Result<$crate::store::Reservation, $crate::error::StoreError> {
                use $crate::store::sql::{backend, to_db};
                // Creates the counter or, if it exists, locks it (a no-op update), and reads
                // it: one statement, so there is always a row, and it is ours until commit.
                let row = sqlx::query(
                    "INSERT INTO verrou_throttle (throttle_key, failures, last_failure) \
                     VALUES ($1, 0, 0) ON CONFLICT (throttle_key) \
                     DO UPDATE SET throttle_key = excluded.throttle_key \
                     RETURNING failures, last_failure",
                )
                .bind(key)
                .fetch_one(&mut **tx)
                .await
                .map_err(backend("read a throttle counter"))?;
                let state = Self::throttle_state(&row)?;
                let (next, reservation) = $crate::store::Reservation::decide(policy, &state, now);
                if let Some(next) = next {
                    sqlx::query(
                        "UPDATE verrou_throttle SET failures = $2, last_failure = $3 \
                         WHERE throttle_key = $1",
                    )
                    .bind(key)
                    .bind(i64::from(next.failures))
                    .bind(to_db(next.last_failure.unix_seconds())?)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend("count an attempt"))?;
                }
                Ok(reservation)
            }

            /// Accepts `step` inside `tx` if it is later than the factor's last one (one
            /// conditional update: of racing requests for one step, one moves it), resetting
            /// the account's counter and storing `record` with it.
            async fn accept_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &$crate::ids::UserId,
                factor: $crate::ids::FactorId,
                step: u64,
                record: $crate::audit::AuditEvent,
            ) -> Result<$crate::store::StepAdvance, $crate::error::StoreError> {
                use $crate::store::sql::{backend, to_db};
                use $crate::store::StepAdvance;
                let factor = factor.to_string();
                let advanced = sqlx::query(
                    "UPDATE verrou_totp_active SET last_step = $3 \
                     WHERE user_id = $1 AND factor_id = $2 AND last_step < $3",
                )
                .bind(user.as_str())
                .bind(&factor)
                .bind(to_db(step)?)
                .execute(&mut **tx)
                .await
                .map_err(backend("accept a time step"))?
                .rows_affected();
                if advanced == 1 {
                    Self::reset_account(tx, user).await?;
                    Self::insert_audit(&mut **tx, record).await?;
                    return Ok(StepAdvance::Advanced);
                }
                let exists: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM verrou_totp_active WHERE user_id = $1 AND factor_id = $2",
                )
                .bind(user.as_str())
                .bind(&factor)
                .fetch_one(&mut **tx)
                .await
                .map_err(backend("read the active factor"))?;
                Ok(if exists > 0 {
                    StepAdvance::AlreadyUsed
                } else {
                    StepAdvance::NoSuchFactor
                })
            }

            /// Ends a write transaction: commits after `Ok`, rolls back after `Err`. Never
            /// leaves it to `Drop`, which only queues the rollback until the connection is
            /// next used, and so could hold row and advisory locks meanwhile.
            async fn finish<T>(
                tx: sqlx::Transaction<'static, $db>,
                result: Result<T, $crate::error::StoreError>,
            ) -> Result<T, $crate::error::StoreError> {
                match result {
                    Ok(value) => {
                        tx.commit()
                            .await
                            .map_err($crate::store::sql::backend("commit"))?;
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
        }

        impl $crate::store::KeyRotation for $store {
            async fn reseal_stale(
                &self,
                limit: usize,
            ) -> Result<$crate::store::ResealReport, $crate::error::StoreError> {
                self.reseal_key_check().await?;
                use $crate::store::sql::backend;
                // Both tables hold sealed secrets; each is read in pages in user-id order.
                const TABLES: [(&str, &str); 2] = [
                    (
                        "SELECT user_id, factor_id, sealed FROM verrou_totp_pending \
                         WHERE user_id > $1 ORDER BY user_id LIMIT $2",
                        "UPDATE verrou_totp_pending SET sealed = $4 \
                         WHERE user_id = $1 AND factor_id = $2 AND sealed = $3",
                    ),
                    (
                        "SELECT user_id, factor_id, sealed FROM verrou_totp_active \
                         WHERE user_id > $1 ORDER BY user_id LIMIT $2",
                        "UPDATE verrou_totp_active SET sealed = $4 \
                         WHERE user_id = $1 AND factor_id = $2 AND sealed = $3",
                    ),
                ];
                const PAGE: i64 = 500;
                let active = self.keys.active_id().clone();
                let mut report = $crate::store::ResealReport::default();
                for (select, update) in TABLES {
                    let mut after = String::new();
                    loop {
                        let rows = sqlx::query(select)
                            .bind(&after)
                            .bind(PAGE)
                            .fetch_all(&self.pool)
                            .await
                            .map_err(backend("read sealed secrets"))?;
                        for row in &rows {
                            let (user, factor, sealed) =
                                Self::sealed_row(row, "decode a sealed secret")?;
                            report.scanned += 1;
                            let sealed_with = $crate::keyring::KeyRing::sealed_with(&sealed);
                            let resealed = match sealed_with {
                                Ok(id) if id == active => None,
                                Ok(_) if report.resealed >= limit => Some(Ok(false)),
                                Ok(_) => Some(self.reseal_row(update, &user, &factor, &sealed).await?),
                                Err(reason) => Some(Err(reason)),
                            };
                            match resealed {
                                None => {}
                                Some(Ok(true)) => report.resealed += 1,
                                Some(Ok(false)) => report.stale += 1,
                                Some(Err(reason)) => {
                                    tracing::warn!(
                                        target: "verrou::store",
                                        user = user.as_str(),
                                        factor = factor.as_str(),
                                        %reason,
                                        "a sealed secret cannot be opened: skipped by the rotation"
                                    );
                                    report.unreadable.push($crate::store::UnreadableSecret {
                                        user: user.clone(),
                                        factor: factor.clone(),
                                        reason,
                                    });
                                }
                            }
                            after = user;
                        }
                        if rows.len() < PAGE as usize {
                            break;
                        }
                    }
                }
                Ok(report)
            }
        }

        impl $crate::store::Store for $store {
            async fn put_pending_totp(
                &self,
                user: &$crate::ids::UserId,
                pending: $crate::store::PendingTotp,
            ) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::{backend, sealing, to_db};
                let sealed = self
                    .keys
                    .seal(&pending.secret, user, &pending.id)
                    .map_err(sealing("seal a TOTP secret"))?;
                sqlx::query(
                    "INSERT INTO verrou_totp_pending (user_id, factor_id, sealed, algorithm, \
                     digits, period, replaces, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (user_id) DO UPDATE SET factor_id = excluded.factor_id, \
                     sealed = excluded.sealed, algorithm = excluded.algorithm, \
                     digits = excluded.digits, period = excluded.period, \
                     replaces = excluded.replaces, created_at = excluded.created_at, \
                     expires_at = excluded.expires_at",
                )
                .bind(user.as_str())
                .bind(pending.id.to_string())
                .bind(sealed)
                .bind(pending.params.algorithm().as_str())
                .bind(i64::from(pending.params.digits()))
                .bind(to_db(pending.params.period())?)
                .bind(pending.replaces.map(|id| id.to_string()))
                .bind(to_db(pending.created_at.unix_seconds())?)
                .bind(to_db(pending.expires_at.unix_seconds())?)
                .execute(&self.pool)
                .await
                .map_err(backend("store a pending factor"))?;
                Ok(())
            }

            async fn pending_totp(
                &self,
                user: &$crate::ids::UserId,
            ) -> Result<Option<$crate::store::PendingTotp>, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{backend, factor_id, timestamp};
                let row = sqlx::query(
                    "SELECT factor_id, sealed, algorithm, digits, period, replaces, \
                     created_at, expires_at FROM verrou_totp_pending WHERE user_id = $1",
                )
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend("read a pending factor"))?;
                let Some(row) = row else { return Ok(None) };
                let decode = || backend("decode a pending factor");
                let id = factor_id(&row.try_get::<String, _>(0).map_err(decode())?)?;
                let sealed: Vec<u8> = row.try_get(1).map_err(decode())?;
                let replaces: Option<String> = row.try_get(5).map_err(decode())?;
                Ok(Some($crate::store::PendingTotp {
                    id,
                    secret: self.open_secret(&sealed, user, &id)?,
                    params: Self::totp_params(&row, 2)?,
                    replaces: replaces.as_deref().map(factor_id).transpose()?,
                    created_at: timestamp(row.try_get(6).map_err(decode())?)?,
                    expires_at: timestamp(row.try_get(7).map_err(decode())?)?,
                }))
            }

            async fn activate_pending_totp(
                &self,
                user: &$crate::ids::UserId,
                factor: $crate::ids::FactorId,
                confirmed_step: u64,
                now: $crate::clock::Timestamp,
            ) -> Result<$crate::store::Activation, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{backend, to_db};
                use $crate::store::Activation;
                let mut tx = self.write("activate a pending factor").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    let pending = sqlx::query(concat!(
                        "SELECT factor_id, replaces, expires_at FROM verrou_totp_pending \
                         WHERE user_id = $1",
                        $lock
                    ))
                    .bind(user.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend("read a pending factor"))?;
                    let decode = || backend("decode a pending factor");
                    let Some(pending) = pending else {
                        return Ok(Activation::NotPending);
                    };
                    if pending.try_get::<String, _>(0).map_err(decode())? != factor.to_string() {
                        return Ok(Activation::NotPending);
                    }
                    let replaces: Option<String> = pending.try_get(1).map_err(decode())?;
                    let expires_at: i64 = pending.try_get(2).map_err(decode())?;
                    if expires_at <= to_db(now.unix_seconds())? {
                        return Ok(Activation::Expired);
                    }
                    let active = Self::lock_active_factor(&mut tx, user).await?;
                    if active != replaces {
                        sqlx::query("DELETE FROM verrou_totp_pending WHERE user_id = $1")
                            .bind(user.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("discard a superseded pending factor"))?;
                        return Ok(Activation::Superseded);
                    }
                    // The sealed blob is bound to (user, factor), which do not change.
                    sqlx::query(
                        "INSERT INTO verrou_totp_active (user_id, factor_id, sealed, algorithm, \
                         digits, period, last_step, activated_at) \
                         SELECT user_id, factor_id, sealed, algorithm, digits, period, $2, $3 \
                         FROM verrou_totp_pending WHERE user_id = $1 \
                         ON CONFLICT (user_id) DO UPDATE SET factor_id = excluded.factor_id, \
                         sealed = excluded.sealed, algorithm = excluded.algorithm, \
                         digits = excluded.digits, period = excluded.period, \
                         last_step = excluded.last_step, activated_at = excluded.activated_at",
                    )
                    .bind(user.as_str())
                    .bind(to_db(confirmed_step)?)
                    .bind(to_db(now.unix_seconds())?)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("activate a pending factor"))?;
                    sqlx::query("DELETE FROM verrou_totp_pending WHERE user_id = $1")
                        .bind(user.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("remove an activated pending factor"))?;
                    Ok(Activation::Activated)
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn active_totp(
                &self,
                user: &$crate::ids::UserId,
            ) -> Result<Option<$crate::store::TotpFactor>, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{backend, factor_id, from_db, timestamp};
                let row = sqlx::query(
                    "SELECT factor_id, sealed, algorithm, digits, period, last_step, \
                     activated_at FROM verrou_totp_active WHERE user_id = $1",
                )
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend("read the active factor"))?;
                let Some(row) = row else { return Ok(None) };
                let decode = || backend("decode the active factor");
                let id = factor_id(&row.try_get::<String, _>(0).map_err(decode())?)?;
                let sealed: Vec<u8> = row.try_get(1).map_err(decode())?;
                Ok(Some($crate::store::TotpFactor {
                    id,
                    secret: self.open_secret(&sealed, user, &id)?,
                    params: Self::totp_params(&row, 2)?,
                    last_step: from_db(row.try_get(5).map_err(decode())?)?,
                    activated_at: timestamp(row.try_get(6).map_err(decode())?)?,
                }))
            }

            async fn accept_totp_step(
                &self,
                user: &$crate::ids::UserId,
                factor: $crate::ids::FactorId,
                step: u64,
                record: $crate::audit::AuditEvent,
            ) -> Result<$crate::store::StepAdvance, $crate::error::StoreError> {
                let mut tx = self.write("accept a time step").await?;
                let result = Self::accept_in(&mut tx, user, factor, step, record).await;
                Self::finish(tx, result).await
            }

            async fn attempt_totp(
                &self,
                user: &$crate::ids::UserId,
                attempt: $crate::store::TotpAttempt<'_>,
            ) -> Result<$crate::store::AttemptVerdict, $crate::error::StoreError> {
                use $crate::store::{AttemptVerdict, ThrottleKey};
                let mut tx = self.write("verify a code").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    if let Some((key, policy)) = &attempt.address {
                        let reserved =
                            Self::reserve_in(&mut tx, &key.storage_key(), policy, attempt.now)
                                .await?;
                        if let Err(refused) = AttemptVerdict::counted(reserved, true) {
                            return Ok(refused);
                        }
                    }
                    let key = ThrottleKey::Account(user).storage_key();
                    let reserved = Self::reserve_in(&mut tx, &key, attempt.account, attempt.now).await?;
                    let account = match AttemptVerdict::counted(reserved, false) {
                        Ok(account) => account,
                        Err(refused) => return Ok(refused),
                    };
                    let advance = match attempt.fresh_step {
                        Some(step) => Some(
                            Self::accept_in(&mut tx, user, attempt.factor, step, attempt.accepted)
                                .await?,
                        ),
                        None => None,
                    };
                    Ok(AttemptVerdict::after(account, advance))
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn replace_recovery_codes(
                &self,
                user: &$crate::ids::UserId,
                codes: Vec<$crate::store::RecoveryCodeRecord>,
            ) -> Result<$crate::store::Replacement, $crate::error::StoreError> {
                use $crate::store::sql::backend;
                use $crate::store::Replacement;
                let mut tx = self.write("replace recovery codes").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    // The factor row is the per-user lock every replacement and removal of
                    // codes takes first. The DELETE below is a later statement, so on
                    // PostgreSQL it sees the codes of a replacement that held the lock before
                    // us (READ COMMITTED takes a snapshot per statement).
                    if Self::lock_active_factor(&mut tx, user).await?.is_none() && !codes.is_empty() {
                        return Ok(Replacement::NoActiveFactor);
                    }
                    sqlx::query("DELETE FROM verrou_recovery_codes WHERE user_id = $1")
                        .bind(user.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("remove old recovery codes"))?;
                    for code in codes {
                        sqlx::query(
                            "INSERT INTO verrou_recovery_codes (user_id, lookup, phc, used) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(user.as_str())
                        .bind(code.lookup.as_str())
                        .bind(code.phc)
                        .bind(code.used)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("store a recovery code"))?;
                    }
                    Ok(Replacement::Replaced)
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn recovery_code(
                &self,
                user: &$crate::ids::UserId,
                lookup: $crate::recovery::Lookup,
            ) -> Result<Option<$crate::store::RecoveryCodeRecord>, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::backend;
                let row = sqlx::query(
                    "SELECT phc, used FROM verrou_recovery_codes \
                     WHERE user_id = $1 AND lookup = $2",
                )
                .bind(user.as_str())
                .bind(lookup.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend("read a recovery code"))?;
                let Some(row) = row else { return Ok(None) };
                let decode = || backend("decode a recovery code");
                Ok(Some($crate::store::RecoveryCodeRecord {
                    lookup,
                    phc: row.try_get(0).map_err(decode())?,
                    used: row.try_get(1).map_err(decode())?,
                }))
            }

            async fn consume_recovery_code(
                &self,
                user: &$crate::ids::UserId,
                lookup: $crate::recovery::Lookup,
            ) -> Result<$crate::store::Consumption, $crate::error::StoreError> {
                use $crate::store::sql::backend;
                use $crate::store::Consumption;
                let mut tx = self.write("consume a recovery code").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    // No code counts without the factor it backs; the per-user lock orders us
                    // strictly before or after a removal of the factor.
                    if Self::lock_active_factor(&mut tx, user).await?.is_none() {
                        return Ok(Consumption::NoActiveFactor);
                    }
                    // One conditional update: of racing requests for one code, one marks it.
                    let consumed = sqlx::query(
                        "UPDATE verrou_recovery_codes SET used = TRUE \
                         WHERE user_id = $1 AND lookup = $2 AND NOT used",
                    )
                    .bind(user.as_str())
                    .bind(lookup.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("consume a recovery code"))?
                    .rows_affected();
                    if consumed == 1 {
                        Self::reset_account(&mut tx, user).await?;
                        let remaining = Self::count_unused(&mut *tx, user).await?;
                        return Ok(Consumption::Consumed { remaining });
                    }
                    let exists: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM verrou_recovery_codes \
                         WHERE user_id = $1 AND lookup = $2",
                    )
                    .bind(user.as_str())
                    .bind(lookup.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend("read a recovery code"))?;
                    Ok(if exists > 0 {
                        Consumption::AlreadyUsed
                    } else {
                        Consumption::NotFound
                    })
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn remaining_recovery_codes(
                &self,
                user: &$crate::ids::UserId,
            ) -> Result<usize, $crate::error::StoreError> {
                Self::count_unused(&self.pool, user).await
            }

            async fn remove_totp(
                &self,
                user: &$crate::ids::UserId,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::backend;
                let mut tx = self.write("remove a factor").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    // Pending before active: the order activation locks them in. Deleting the
                    // active row takes the per-user lock that replacements of codes take, and
                    // the codes are deleted by a later statement, which sees a replacement
                    // that committed while we waited.
                    let mut removed = 0;
                    for sql in [
                        "DELETE FROM verrou_totp_pending WHERE user_id = $1",
                        "DELETE FROM verrou_totp_active WHERE user_id = $1",
                    ] {
                        removed += sqlx::query(sql)
                            .bind(user.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("remove a factor"))?
                            .rows_affected();
                    }
                    sqlx::query("DELETE FROM verrou_recovery_codes WHERE user_id = $1")
                        .bind(user.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("remove recovery codes"))?;
                    Ok(removed > 0)
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn throttle(
                &self,
                key: &$crate::store::ThrottleKey<'_>,
            ) -> Result<$crate::lockout::ThrottleState, $crate::error::StoreError> {
                let row = sqlx::query(
                    "SELECT failures, last_failure FROM verrou_throttle WHERE throttle_key = $1",
                )
                .bind(key.storage_key())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::sql::backend("read a throttle counter"))?;
                match row {
                    Some(row) => Self::throttle_state(&row),
                    None => Ok($crate::lockout::ThrottleState::default()),
                }
            }

            async fn reserve_attempt(
                &self,
                key: &$crate::store::ThrottleKey<'_>,
                policy: &$crate::lockout::ThrottlePolicy,
                now: $crate::clock::Timestamp,
            ) -> Result<$crate::store::Reservation, $crate::error::StoreError> {
                let mut tx = self.write("reserve an attempt").await?;
                let result = Self::reserve_in(&mut tx, &key.storage_key(), policy, now).await;
                Self::finish(tx, result).await
            }

            async fn clear_throttle(
                &self,
                key: &$crate::store::ThrottleKey<'_>,
            ) -> Result<(), $crate::error::StoreError> {
                sqlx::query("DELETE FROM verrou_throttle WHERE throttle_key = $1")
                    .bind(key.storage_key())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::sql::backend("clear a throttle counter"))?;
                Ok(())
            }

            async fn record_audit(
                &self,
                event: $crate::audit::AuditEvent,
            ) -> Result<(), $crate::error::StoreError> {
                Self::insert_audit(&self.pool, event).await
            }

            async fn audit_trail(
                &self,
                user: Option<&$crate::ids::UserId>,
                limit: usize,
            ) -> Result<Vec<$crate::audit::AuditEvent>, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{audit_event, backend};
                let rows = sqlx::query(
                    "SELECT at, user_id, client, kind, factor_id, session_id, value, detail \
                     FROM verrou_audit WHERE ($1 IS NULL OR user_id = $1) \
                     ORDER BY id DESC LIMIT $2",
                )
                .bind(user.map($crate::ids::UserId::as_str))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(backend("read the audit trail"))?;
                let decode = || backend("decode an audit event");
                rows.iter()
                    .map(|row| {
                        audit_event(
                            row.try_get(0).map_err(decode())?,
                            row.try_get(1).map_err(decode())?,
                            row.try_get(2).map_err(decode())?,
                            row.try_get(3).map_err(decode())?,
                            row.try_get(4).map_err(decode())?,
                            row.try_get(5).map_err(decode())?,
                            row.try_get(6).map_err(decode())?,
                            row.try_get(7).map_err(decode())?,
                        )
                    })
                    .collect()
            }
        }

        $crate::store::sql::impl_sql_sessions!($store, $db, lock = $lock);
    };
}
pub(crate) use impl_sql_store;
