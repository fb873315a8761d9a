//! Two handles on one database, as two portal instances would hold: each operation goes to
//! the next handle in turn, so racing requests really cross connection pools.

use std::sync::atomic::{AtomicUsize, Ordering};

use verrou::lockout::{ThrottlePolicy, ThrottleState};
use verrou::recovery::Lookup;
use verrou::session::{RevocationScope, TokenHash};
use verrou::store::backend::Elevation;
use verrou::store::backend::{
    Activation, AttemptVerdict, Consumption, PendingTotp, RecoveryCodeRecord, Replacement,
    Reservation, StepAdvance, ThrottleKey, TotpAttempt, TotpFactor,
};
use verrou::store::backend::{BindingRecord, SessionRecord};
use verrou::store::backend::{RevocationContext, SessionStore};
use verrou::store::{AuditEntry, AuditQuery, Store};
use verrou::{AuditEvent, FactorId, SessionId, StoreError, Timestamp, UserId};

#[derive(Debug)]
pub struct TwoHandles<S> {
    handles: [S; 2],
    next: AtomicUsize,
}

impl<S> TwoHandles<S> {
    pub fn new(first: S, second: S) -> Self {
        Self {
            handles: [first, second],
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> &S {
        &self.handles[self.next.fetch_add(1, Ordering::Relaxed) % 2]
    }
}

impl<S: Store> Store for TwoHandles<S> {
    async fn put_pending_totp(&self, user: &UserId, p: PendingTotp) -> Result<(), StoreError> {
        self.pick().put_pending_totp(user, p).await
    }
    async fn pending_totp(&self, user: &UserId) -> Result<Option<PendingTotp>, StoreError> {
        self.pick().pending_totp(user).await
    }
    async fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        now: Timestamp,
    ) -> Result<Activation, StoreError> {
        self.pick()
            .activate_pending_totp(user, factor, step, now)
            .await
    }
    async fn active_totp(&self, user: &UserId) -> Result<Option<TotpFactor>, StoreError> {
        self.pick().active_totp(user).await
    }
    async fn accept_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> Result<StepAdvance, StoreError> {
        self.pick()
            .accept_totp_step(user, factor, step, record)
            .await
    }
    async fn attempt_totp(
        &self,
        user: &UserId,
        attempt: TotpAttempt<'_>,
    ) -> Result<AttemptVerdict, StoreError> {
        self.pick().attempt_totp(user, attempt).await
    }
    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> Result<Replacement, StoreError> {
        self.pick().replace_recovery_codes(user, codes).await
    }
    async fn recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        self.pick().recovery_code(user, lookup).await
    }
    async fn consume_recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Consumption, StoreError> {
        self.pick().consume_recovery_code(user, lookup).await
    }
    async fn remaining_recovery_codes(&self, user: &UserId) -> Result<usize, StoreError> {
        self.pick().remaining_recovery_codes(user).await
    }
    async fn remove_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        self.pick().remove_totp(user).await
    }
    async fn throttle(&self, key: &ThrottleKey<'_>) -> Result<ThrottleState, StoreError> {
        self.pick().throttle(key).await
    }
    async fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        self.pick().reserve_attempt(key, policy, now).await
    }
    async fn clear_throttle(&self, key: &ThrottleKey<'_>) -> Result<(), StoreError> {
        self.pick().clear_throttle(key).await
    }
    async fn record_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.pick().record_audit(event).await
    }
    async fn failing_accounts(&self) -> Result<Vec<(UserId, ThrottleState)>, StoreError> {
        self.pick().failing_accounts().await
    }
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.pick().audit_events(query).await
    }
}

impl<S: Store> SessionStore for TwoHandles<S> {
    async fn create_session(&self, record: SessionRecord) -> Result<(), StoreError> {
        self.pick().create_session(record).await
    }
    async fn session_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.pick().session_by_token(token).await
    }
    async fn touch_session(&self, session: SessionId, at: Timestamp) -> Result<(), StoreError> {
        self.pick().touch_session(session, at).await
    }
    async fn elevate_session(
        &self,
        session: SessionId,
        current: &TokenHash,
        elevation: Elevation,
    ) -> Result<bool, StoreError> {
        self.pick()
            .elevate_session(session, current, elevation)
            .await
    }
    async fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        context: RevocationContext,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.pick().revoke_sessions(scope, context).await
    }
    async fn sessions_in(&self, scope: &RevocationScope) -> Result<Vec<SessionRecord>, StoreError> {
        self.pick().sessions_in(scope).await
    }
    async fn binding(&self, session: SessionId) -> Result<Option<BindingRecord>, StoreError> {
        self.pick().binding(session).await
    }
    async fn swap_binding(
        &self,
        session: SessionId,
        expected: Option<u64>,
        record: BindingRecord,
    ) -> Result<bool, StoreError> {
        self.pick().swap_binding(session, expected, record).await
    }
    async fn purge_expired_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<usize, StoreError> {
        self.pick().purge_expired_sessions(now, idle_before).await
    }
}
