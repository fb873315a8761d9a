//! The factor half of the store: TOTP factors, verification attempts, recovery codes,
//! throttle counters and the audit trail.

use std::future::Future;

use super::{
    Activation, AttemptVerdict, AuditEntry, AuditQuery, Consumption, PendingTotp,
    RecoveryCodeRecord, Replacement, Reservation, SessionStore, StepAdvance, ThrottleKey,
    TotpAttempt, TotpFactor,
};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::ids::{FactorId, UserId};
use crate::lockout::{ThrottlePolicy, ThrottleState};
use crate::recovery::Lookup;

/// The storage operations verrou needs, each atomic.
///
/// Implementations must be safe to share between tasks and, for SQL backends, between
/// processes: correctness may not depend on a lock held in this process.
///
/// Sessions are part of every store: the session operations are the supertrait
/// [`SessionStore`], split out only to keep each half readable.
pub trait Store: SessionStore + Send + Sync {
    /// Stores `pending` as the user's pending factor, replacing any earlier pending one.
    fn put_pending_totp(
        &self,
        user: &UserId,
        pending: PendingTotp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's pending factor, expired or not.
    fn pending_totp(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<PendingTotp>, StoreError>> + Send;

    /// Atomically: if the pending factor is `factor`, unexpired at `now`, and the active factor
    /// is still `pending.replaces`, make it the active factor with `last_step =
    /// confirmed_step` and remove it from pending. `Superseded` discards the pending factor.
    fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        confirmed_step: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<Activation, StoreError>> + Send;

    /// The user's active factor.
    fn active_totp(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<TotpFactor>, StoreError>> + Send;

    /// Atomically: if the active factor is `factor` and its last step is below `step`, set it
    /// to `step`, reset the user's account throttle counter (a success) **and** append
    /// `record` to the audit trail. An accepted step and its audit record are stored together
    /// or not at all.
    fn accept_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> impl Future<Output = Result<StepAdvance, StoreError>> + Send;

    /// Atomically (one write transaction in SQL backends): counts the attempt on the
    /// address counter (if any) and the account counter, stopping at the first refusal; then,
    /// if `attempt.fresh_step` is set, does what [`Store::accept_totp_step`] does. A
    /// verification is then one durable commit. An accepted code is no failure: the account's
    /// counter is reset and the address's count of this attempt is not kept (an office
    /// behind one address signs in all day), while every other attempt stays counted.
    ///
    /// The default runs [`Store::reserve_attempt`] and [`Store::accept_totp_step`] one after
    /// the other: each atomic, the pair not (a crash in between leaves a counted attempt whose
    /// code was not accepted), and an accepted code stays counted against its address.
    /// verrou's stores override it.
    fn attempt_totp(
        &self,
        user: &UserId,
        attempt: TotpAttempt<'_>,
    ) -> impl Future<Output = Result<AttemptVerdict, StoreError>> + Send {
        async move {
            if let Some((key, policy)) = &attempt.address {
                let reserved = self.reserve_attempt(key, policy, attempt.now).await?;
                if let Err(refused) = AttemptVerdict::counted(reserved, true) {
                    return Ok(refused);
                }
            }
            let key = ThrottleKey::Account(user);
            let reserved = self
                .reserve_attempt(&key, attempt.account, attempt.now)
                .await?;
            let account = match AttemptVerdict::counted(reserved, false) {
                Ok(account) => account,
                Err(refused) => return Ok(refused),
            };
            let advance = match attempt.fresh_step {
                Some(step) => Some(
                    self.accept_totp_step(user, attempt.factor, step, attempt.accepted)
                        .await?,
                ),
                None => None,
            };
            Ok(AttemptVerdict::after(account, advance))
        }
    }

    /// Atomically replaces the user's whole set of recovery codes (old codes stop working at
    /// once), if the user has an active factor; an empty set is always stored.
    ///
    /// Every operation that replaces or voids a user's codes (this one and
    /// [`Store::remove_totp`]) is serialised per user, on every backend and across
    /// processes: two racing replacements leave exactly one set, and a replacement racing a
    /// removal leaves either no factor and no codes, or a factor and one set. SQL backends
    /// lock the user's active factor row before touching the codes.
    fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> impl Future<Output = Result<Replacement, StoreError>> + Send;

    /// The user's recovery code with this lookup, used or not.
    fn recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> impl Future<Output = Result<Option<RecoveryCodeRecord>, StoreError>> + Send;

    /// Atomically: if the user has an active factor and the code with this lookup is
    /// unused, mark it used **and** reset the user's account throttle counter (a success).
    fn consume_recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> impl Future<Output = Result<Consumption, StoreError>> + Send;

    /// How many unused recovery codes the user has.
    fn remaining_recovery_codes(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Atomically removes the user's active and pending factors **and all their recovery
    /// codes** (serialised with [`Store::replace_recovery_codes`]); true if there was a
    /// factor.
    fn remove_totp(&self, user: &UserId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The throttle counter for `key` (no failures if there is none).
    fn throttle(
        &self,
        key: &ThrottleKey<'_>,
    ) -> impl Future<Output = Result<ThrottleState, StoreError>> + Send;

    /// Every account whose counter holds failures, with its state (for operators: who is
    /// locked or slowed down, judged by the caller's policy), in user id order.
    fn failing_accounts(
        &self,
    ) -> impl Future<Output = Result<Vec<(UserId, ThrottleState)>, StoreError>> + Send;

    /// Atomically evaluates `policy` on the counter for `key` at `now` and, if the gate is
    /// open, counts one failure ([`Reservation::decide`] says what to do; the store makes it
    /// atomic).
    fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// Resets the counter for `key` to no failures.
    fn clear_throttle(
        &self,
        key: &ThrottleKey<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `event` to the audit trail.
    fn record_audit(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The audit events `query` selects, with their cursors: newest first, or after
    /// `query.after` oldest first.
    fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    /// The newest `limit` events of the audit trail, newest first: `user`'s, or everyone's.
    fn audit_trail(
        &self,
        user: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send {
        let query = AuditQuery::newest(limit).user(user.cloned());
        async move {
            let entries = self.audit_events(&query).await?;
            Ok(entries.into_iter().map(|entry| entry.event).collect())
        }
    }
}
