//! The SQL store's [`Store`]: TOTP factors, verification attempts, recovery codes, throttle
//! counters and the audit trail.

use super::driver::{Driver, Fields, Sql};
use super::values::{
    account_key, factor_id, failures, from_db, params, sealing, timestamp, to_db, user_id, AuditRow,
};
use super::{insert_audit, reset_account, SqlStore};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::ids::{FactorId, UserId};
use crate::lockout::{ThrottlePolicy, ThrottleState};
use crate::recovery::Lookup;
use crate::secret::TotpSecret;
use crate::store::{
    Activation, AttemptVerdict, AuditEntry, AuditQuery, Consumption, PendingTotp,
    RecoveryCodeRecord, Replacement, Reservation, StepAdvance, Store, ThrottleKey, TotpAttempt,
    TotpFactor,
};
use crate::totp::TotpParams;

impl<D: Driver> Store for SqlStore<D> {
    async fn put_pending_totp(
        &self,
        user: &UserId,
        pending: PendingTotp,
    ) -> Result<(), StoreError> {
        let sealed = self
            .keys()
            .seal(&pending.secret, user, &pending.id)
            .map_err(sealing("seal a TOTP secret"))?;
        Sql::<D>::new(
            "INSERT INTO verrou_totp_pending (user_id, factor_id, sealed, algorithm, digits, \
             period, replaces, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (user_id) DO UPDATE SET factor_id = excluded.factor_id, \
             sealed = excluded.sealed, algorithm = excluded.algorithm, \
             digits = excluded.digits, period = excluded.period, \
             replaces = excluded.replaces, created_at = excluded.created_at, \
             expires_at = excluded.expires_at",
            "store a pending factor",
        )
        .text(user.as_str())
        .text(pending.id.to_string())
        .bytes(sealed)
        .text(pending.params.algorithm().as_str())
        .int(i64::from(pending.params.digits()))
        .int(to_db(pending.params.period())?)
        .opt_text(pending.replaces.map(|id| id.to_string()))
        .int(to_db(pending.created_at.unix_seconds())?)
        .int(to_db(pending.expires_at.unix_seconds())?)
        .execute(&mut *self.write_connection("store a pending factor").await?)
        .await?;
        Ok(())
    }

    async fn pending_totp(&self, user: &UserId) -> Result<Option<PendingTotp>, StoreError> {
        let row = Sql::<D>::new(
            "SELECT factor_id, sealed, algorithm, digits, period, replaces, created_at, \
             expires_at FROM verrou_totp_pending WHERE user_id = $1",
            "read a pending factor",
        )
        .text(user.as_str())
        .fetch_optional(&mut *self.connection("read a pending factor").await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id = factor_id(&row.text(0)?)?;
        Ok(Some(PendingTotp {
            id,
            secret: self.open_secret(&row.bytes(1)?, user, &id)?,
            params: totp_params(&row, 2)?,
            replaces: row.opt_text(5)?.as_deref().map(factor_id).transpose()?,
            created_at: timestamp(row.int(6)?)?,
            expires_at: timestamp(row.int(7)?)?,
        }))
    }

    async fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        confirmed_step: u64,
        now: Timestamp,
    ) -> Result<Activation, StoreError> {
        self.write("activate a pending factor", move |tx, _| {
            Box::pin(async move {
                let pending = Sql::<D>::new(D::LOCK_PENDING_FACTOR, "read a pending factor")
                    .text(user.as_str())
                    .fetch_optional(tx)
                    .await?;
                let Some(pending) = pending else {
                    return Ok(Activation::NotPending);
                };
                if pending.text(0)? != factor.to_string() {
                    return Ok(Activation::NotPending);
                }
                if pending.int(2)? <= to_db(now.unix_seconds())? {
                    return Ok(Activation::Expired);
                }
                let discard = Sql::<D>::new(
                    "DELETE FROM verrou_totp_pending WHERE user_id = $1",
                    "remove the pending factor",
                )
                .text(user.as_str());
                if lock_active_factor::<D>(tx, user).await? != pending.opt_text(1)? {
                    discard.execute(tx).await?;
                    return Ok(Activation::Superseded);
                }
                // The sealed blob is bound to (user, factor), which do not change.
                Sql::<D>::new(
                    "INSERT INTO verrou_totp_active (user_id, factor_id, sealed, algorithm, \
                     digits, period, last_step, activated_at) \
                     SELECT user_id, factor_id, sealed, algorithm, digits, period, $2, $3 \
                     FROM verrou_totp_pending WHERE user_id = $1 \
                     ON CONFLICT (user_id) DO UPDATE SET factor_id = excluded.factor_id, \
                     sealed = excluded.sealed, algorithm = excluded.algorithm, \
                     digits = excluded.digits, period = excluded.period, \
                     last_step = excluded.last_step, activated_at = excluded.activated_at",
                    "activate a pending factor",
                )
                .text(user.as_str())
                .int(to_db(confirmed_step)?)
                .int(to_db(now.unix_seconds())?)
                .execute(tx)
                .await?;
                discard.execute(tx).await?;
                Ok(Activation::Activated)
            })
        })
        .await
    }

    async fn active_totp(&self, user: &UserId) -> Result<Option<TotpFactor>, StoreError> {
        let row = Sql::<D>::new(
            "SELECT factor_id, sealed, algorithm, digits, period, last_step, activated_at \
             FROM verrou_totp_active WHERE user_id = $1",
            "read the active factor",
        )
        .text(user.as_str())
        .fetch_optional(&mut *self.connection("read the active factor").await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id = factor_id(&row.text(0)?)?;
        Ok(Some(TotpFactor {
            id,
            secret: self.open_secret(&row.bytes(1)?, user, &id)?,
            params: totp_params(&row, 2)?,
            last_step: from_db(row.int(5)?)?,
            activated_at: timestamp(row.int(6)?)?,
        }))
    }

    async fn accept_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> Result<StepAdvance, StoreError> {
        self.write("accept a time step", move |tx, _| {
            Box::pin(async move { accept_step::<D>(tx, user, factor, step, &record).await })
        })
        .await
    }

    async fn attempt_totp(
        &self,
        user: &UserId,
        attempt: TotpAttempt<'_>,
    ) -> Result<AttemptVerdict, StoreError> {
        if let Some(call) = D::ATTEMPT_CALL {
            if let Some(verdict) = self.attempt_in_one_call(call, user, &attempt).await? {
                return Ok(verdict);
            }
        }
        self.write("verify a code", move |tx, _| {
            Box::pin(async move {
                let mut address = None;
                if let Some((key, policy)) = &attempt.address {
                    let key = key.storage_key();
                    let (next, reserved) = decide::<D>(tx, &key, policy, attempt.now).await?;
                    if let Err(refused) = AttemptVerdict::counted(reserved, true) {
                        return Ok(refused);
                    }
                    address = next.map(|next| (key, next));
                }
                let key = account_key(user);
                let (next, reserved) = decide::<D>(tx, &key, attempt.account, attempt.now).await?;
                let account = match AttemptVerdict::counted(reserved, false) {
                    Ok(account) => account,
                    Err(refused) => return Ok(refused),
                };
                let advance = match attempt.fresh_step {
                    Some(step) => Some(
                        accept_step::<D>(tx, user, attempt.factor, step, &attempt.accepted).await?,
                    ),
                    None => None,
                };
                // Both counts are written only when they stand: an accepted step resets the
                // account's counter in this same transaction, and is no failure of its
                // address (an office behind one address logs in all day).
                if advance != Some(StepAdvance::Advanced) {
                    if let Some((address_key, next)) = address {
                        write_count::<D>(tx, &address_key, next).await?;
                    }
                    if let Some(next) = next {
                        write_count::<D>(tx, &key, next).await?;
                    }
                }
                Ok(AttemptVerdict::after(account, advance))
            })
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> Result<Replacement, StoreError> {
        self.write("replace recovery codes", move |tx, _| {
            Box::pin(async move {
                // The factor row is the per-user lock every replacement and removal of codes
                // takes first. The DELETE below is a later statement, so on PostgreSQL it sees
                // the codes of a replacement that held the lock before us (READ COMMITTED
                // takes a snapshot per statement).
                if lock_active_factor::<D>(tx, user).await?.is_none() && !codes.is_empty() {
                    return Ok(Replacement::NoActiveFactor);
                }
                delete_codes::<D>(tx, user).await?;
                for code in codes {
                    Sql::<D>::new(
                        "INSERT INTO verrou_recovery_codes (user_id, lookup, phc, used) \
                         VALUES ($1, $2, $3, $4)",
                        "store a recovery code",
                    )
                    .text(user.as_str())
                    .text(code.lookup.as_str())
                    .text(code.phc)
                    .flag(code.used)
                    .execute(tx)
                    .await?;
                }
                Ok(Replacement::Replaced)
            })
        })
        .await
    }

    async fn recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        let row = Sql::<D>::new(
            "SELECT phc, used FROM verrou_recovery_codes WHERE user_id = $1 AND lookup = $2",
            "read a recovery code",
        )
        .text(user.as_str())
        .text(lookup.as_str())
        .fetch_optional(&mut *self.connection("read a recovery code").await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RecoveryCodeRecord {
            lookup,
            phc: row.text(0)?,
            used: row.flag(1)?,
        }))
    }

    async fn consume_recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Consumption, StoreError> {
        self.write("consume a recovery code", move |tx, _| {
            Box::pin(async move {
                // No code counts without the factor it backs; the per-user lock orders us
                // strictly before or after a removal of the factor.
                if lock_active_factor::<D>(tx, user).await?.is_none() {
                    return Ok(Consumption::NoActiveFactor);
                }
                // One conditional update: of racing requests for one code, one marks it.
                let consumed = Sql::<D>::new(
                    "UPDATE verrou_recovery_codes SET used = TRUE \
                     WHERE user_id = $1 AND lookup = $2 AND NOT used",
                    "consume a recovery code",
                )
                .text(user.as_str())
                .text(lookup.as_str())
                .execute(tx)
                .await?;
                if consumed == 1 {
                    reset_account::<D>(tx, user).await?;
                    let remaining = count_unused::<D>(tx, user).await?;
                    return Ok(Consumption::Consumed { remaining });
                }
                let exists = Sql::<D>::new(
                    "SELECT 1 FROM verrou_recovery_codes WHERE user_id = $1 AND lookup = $2",
                    "read a recovery code",
                )
                .text(user.as_str())
                .text(lookup.as_str())
                .fetch_optional(tx)
                .await?;
                Ok(match exists {
                    Some(_) => Consumption::AlreadyUsed,
                    None => Consumption::NotFound,
                })
            })
        })
        .await
    }

    async fn remaining_recovery_codes(&self, user: &UserId) -> Result<usize, StoreError> {
        count_unused::<D>(&mut *self.connection("count recovery codes").await?, user).await
    }

    async fn remove_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        self.write("remove a factor", move |tx, _| {
            Box::pin(async move {
                // Pending before active: the order activation locks them in. Deleting the
                // active row takes the per-user lock that replacements of codes take, and the
                // codes are deleted by a later statement, which sees a replacement that
                // committed while we waited.
                let mut removed = 0;
                for sql in [
                    "DELETE FROM verrou_totp_pending WHERE user_id = $1",
                    "DELETE FROM verrou_totp_active WHERE user_id = $1",
                ] {
                    removed += Sql::<D>::new(sql, "remove a factor")
                        .text(user.as_str())
                        .execute(tx)
                        .await?;
                }
                delete_codes::<D>(tx, user).await?;
                Ok(removed > 0)
            })
        })
        .await
    }

    async fn throttle(&self, key: &ThrottleKey<'_>) -> Result<ThrottleState, StoreError> {
        let row = Sql::<D>::new(
            "SELECT failures, last_failure FROM verrou_throttle WHERE throttle_key = $1",
            "read a throttle counter",
        )
        .text(key.storage_key())
        .fetch_optional(&mut *self.connection("read a throttle counter").await?)
        .await?;
        match row {
            Some(row) => throttle_state(&row, 0),
            None => Ok(ThrottleState::default()),
        }
    }

    async fn failing_accounts(&self) -> Result<Vec<(UserId, ThrottleState)>, StoreError> {
        let rows = Sql::<D>::new(
            "SELECT throttle_key, failures, last_failure FROM verrou_throttle \
             WHERE throttle_key LIKE 'account:%' AND failures > 0 ORDER BY throttle_key",
            "list failing accounts",
        )
        .fetch_all(&mut *self.connection("list failing accounts").await?)
        .await?;
        rows.iter()
            .map(|row| {
                let key = row.text(0)?;
                let user = user_id(key.strip_prefix("account:").unwrap_or(&key))?;
                Ok((user, throttle_state(row, 1)?))
            })
            .collect()
    }

    async fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        let key = key.storage_key();
        self.write("reserve an attempt", move |tx, _| {
            Box::pin(async move { reserve::<D>(tx, &key, policy, now).await })
        })
        .await
    }

    async fn clear_throttle(&self, key: &ThrottleKey<'_>) -> Result<(), StoreError> {
        Sql::<D>::new(
            "DELETE FROM verrou_throttle WHERE throttle_key = $1",
            "clear a throttle counter",
        )
        .text(key.storage_key())
        .execute(&mut *self.write_connection("clear a throttle counter").await?)
        .await?;
        Ok(())
    }

    async fn record_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        insert_audit::<D>(
            &mut *self.write_connection("record an audit event").await?,
            &event,
        )
        .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let (sql, cursor) = match query.after {
            Some(after) => (AUDIT_AFTER, Some(to_db(after)?)),
            None => (AUDIT_NEWEST, None),
        };
        let rows = Sql::<D>::new(sql, "read the audit trail")
            .opt_text(query.user.as_ref().map(|user| user.as_str().to_owned()))
            .opt_text(query.kind.clone())
            .opt_int(query.since.map(|at| to_db(at.unix_seconds())).transpose()?)
            .opt_int(query.until.map(|at| to_db(at.unix_seconds())).transpose()?)
            .opt_int(cursor)
            .int(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .opt_text(query.org.as_ref().map(|org| org.as_str().to_owned()))
            .fetch_all(&mut *self.connection("read the audit trail").await?)
            .await?;
        rows.iter()
            .map(|row| {
                let event = AuditRow {
                    at: row.int(1)?,
                    user: row.text(2)?,
                    client: row.opt_text(3)?,
                    kind: row.text(4)?,
                    factor: row.opt_text(5)?,
                    session: row.opt_text(6)?,
                    value: row.opt_int(7)?,
                    detail: row.opt_int(8)?,
                    note: row.opt_text(9)?,
                    org: row.opt_text(10)?,
                }
                .event()?;
                Ok(AuditEntry::new(from_db(row.int(0)?)?, event))
            })
            .collect()
    }
}

/// The audit events a query selects (`$1` user, `$2` kind, `$3` since, `$4` until, `$5` the
/// cursor, `$7` organisation, each `NULL` for no filter; `$6` the limit), written once for
/// both orders.
macro_rules! audit_select {
    ($order:literal) => {
        concat!(
            "SELECT id, at, user_id, client, kind, factor_id, session_id, value, detail, note, \
             org_id FROM verrou_audit WHERE ($1 IS NULL OR user_id = $1) \
             AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR at >= $3) \
             AND ($4 IS NULL OR at < $4) AND ($5 IS NULL OR id > $5) \
             AND ($7 IS NULL OR org_id = $7) ORDER BY id ",
            $order,
            " LIMIT $6"
        )
    };
}

/// The newest events first.
const AUDIT_NEWEST: &str = audit_select!("DESC");
/// The events after a cursor, oldest first.
const AUDIT_AFTER: &str = audit_select!("ASC");

#[allow(private_bounds, reason = "crate-private helpers; Driver is sealed")]
impl<D: Driver> SqlStore<D> {
    fn open_secret(
        &self,
        sealed: &[u8],
        user: &UserId,
        factor: &FactorId,
    ) -> Result<TotpSecret, StoreError> {
        self.keys()
            .open(sealed, user, factor)
            .map_err(sealing("open a stored TOTP secret"))
    }
}

/// Locks the user's active factor row until the transaction ends and returns its factor id
/// (`None` if there is none). Activation reads the factor it replaces through it, and it is
/// the per-user lock for replacing or voiding recovery codes.
async fn lock_active_factor<D: Driver>(
    tx: &mut D::Connection,
    user: &UserId,
) -> Result<Option<String>, StoreError> {
    let row = Sql::<D>::new(D::LOCK_ACTIVE_FACTOR, "lock the active factor")
        .text(user.as_str())
        .fetch_optional(tx)
        .await?;
    row.map(|row| row.text(0)).transpose()
}

/// Counts one attempt on the counter `key` inside the transaction, if its gate is open
/// ([`Reservation::decide`]).
async fn reserve<D: Driver>(
    tx: &mut D::Connection,
    key: &str,
    policy: &ThrottlePolicy,
    now: Timestamp,
) -> Result<Reservation, StoreError> {
    let (next, reservation) = decide::<D>(tx, key, policy, now).await?;
    if let Some(next) = next {
        write_count::<D>(tx, key, next).await?;
    }
    Ok(reservation)
}

/// Locks the counter `key` until the transaction ends (creating it if needed) and decides
/// the attempt ([`Reservation::decide`]): the state to write if it is counted, and the
/// reservation. Writes nothing but the lock.
async fn decide<D: Driver>(
    tx: &mut D::Connection,
    key: &str,
    policy: &ThrottlePolicy,
    now: Timestamp,
) -> Result<(Option<ThrottleState>, Reservation), StoreError> {
    // Creates the counter or, if it exists, locks it (a no-op update), and reads it: one
    // statement, so there is always a row, and it is ours until commit.
    let row = Sql::<D>::new(
        "INSERT INTO verrou_throttle (throttle_key, failures, last_failure) \
         VALUES ($1, 0, 0) ON CONFLICT (throttle_key) \
         DO UPDATE SET throttle_key = excluded.throttle_key \
         RETURNING failures, last_failure",
        "read a throttle counter",
    )
    .text(key)
    .fetch_one(tx)
    .await?;
    Ok(Reservation::decide(policy, &throttle_state(&row, 0)?, now))
}

/// Writes the counter `key`'s new state.
async fn write_count<D: Driver>(
    tx: &mut D::Connection,
    key: &str,
    next: ThrottleState,
) -> Result<(), StoreError> {
    Sql::<D>::new(
        "UPDATE verrou_throttle SET failures = $2, last_failure = $3 WHERE throttle_key = $1",
        "count an attempt",
    )
    .text(key)
    .int(i64::from(next.failures))
    .int(to_db(next.last_failure.unix_seconds())?)
    .execute(tx)
    .await?;
    Ok(())
}

/// Accepts `step` inside the transaction if it is later than the factor's last one (one
/// conditional update: of racing requests for one step, one moves it), resetting the
/// account's counter and storing `record` with it.
async fn accept_step<D: Driver>(
    tx: &mut D::Connection,
    user: &UserId,
    factor: FactorId,
    step: u64,
    record: &AuditEvent,
) -> Result<StepAdvance, StoreError> {
    let factor = factor.to_string();
    let advanced = Sql::<D>::new(
        "UPDATE verrou_totp_active SET last_step = $3 \
         WHERE user_id = $1 AND factor_id = $2 AND last_step < $3",
        "accept a time step",
    )
    .text(user.as_str())
    .text(factor.clone())
    .int(to_db(step)?)
    .execute(tx)
    .await?;
    if advanced == 1 {
        reset_account::<D>(tx, user).await?;
        insert_audit::<D>(tx, record).await?;
        return Ok(StepAdvance::Advanced);
    }
    let exists = Sql::<D>::new(
        "SELECT 1 FROM verrou_totp_active WHERE user_id = $1 AND factor_id = $2",
        "read the active factor",
    )
    .text(user.as_str())
    .text(factor)
    .fetch_optional(tx)
    .await?;
    Ok(match exists {
        Some(_) => StepAdvance::AlreadyUsed,
        None => StepAdvance::NoSuchFactor,
    })
}

/// Deletes every recovery code of the user's.
async fn delete_codes<D: Driver>(tx: &mut D::Connection, user: &UserId) -> Result<(), StoreError> {
    Sql::<D>::new(
        "DELETE FROM verrou_recovery_codes WHERE user_id = $1",
        "remove recovery codes",
    )
    .text(user.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// How many unused recovery codes the user has.
async fn count_unused<D: Driver>(
    on: &mut D::Connection,
    user: &UserId,
) -> Result<usize, StoreError> {
    let row = Sql::<D>::new(
        "SELECT COUNT(*) FROM verrou_recovery_codes WHERE user_id = $1 AND NOT used",
        "count recovery codes",
    )
    .text(user.as_str())
    .fetch_one(on)
    .await?;
    Ok(usize::try_from(from_db(row.int(0)?)?).unwrap_or(usize::MAX))
}

/// The counter in columns `first` (`failures`) and `first + 1` (`last_failure`).
pub(super) fn throttle_state<D: Driver>(
    row: &Fields<D>,
    first: usize,
) -> Result<ThrottleState, StoreError> {
    Ok(ThrottleState {
        failures: failures(row.int(first)?)?,
        last_failure: timestamp(row.int(first + 1)?)?,
    })
}

/// The `algorithm, digits, period` columns starting at `first`.
fn totp_params<D: Driver>(row: &Fields<D>, first: usize) -> Result<TotpParams, StoreError> {
    params(&row.text(first)?, row.int(first + 1)?, row.int(first + 2)?)
}
