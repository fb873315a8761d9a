//! A store chosen at run time: SQLite or PostgreSQL by URL, for portals (and tools) that let
//! their configuration decide. It adds nothing to the backend it holds: every operation, the
//! atomic ones included, is the backend's own.

use std::collections::BTreeMap;

use super::backend::*;
#[cfg(feature = "postgres")]
use super::PostgresStore;
#[cfg(feature = "sqlite")]
use super::SqliteStore;
use super::{KeyRotation, ResealBatch, ResealPosition, SealedSecrets};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{FactorId, OrgId, SessionId, UserId};
use crate::keyring::KeyRing;
use crate::lockout::ThrottlePolicy;
use crate::recovery::Lookup;
use crate::session::{Assurance, RevocationScope, TokenHash};

/// Runs `$body` on the backend `self` holds, bound as `$store` (the one place the
/// backends' `cfg`s are written out).
macro_rules! each {
    ($self:expr, $store:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite($store) => $body,
            #[cfg(feature = "postgres")]
            Self::Postgres($store) => $body,
        }
    };
}

/// SQLite or PostgreSQL, chosen at run time ([`AnyStore::open`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// One SQLite file (the `sqlite` feature).
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// A PostgreSQL database several instances share (the `postgres` feature).
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens the store `url` names: `sqlite:<path>` (created if missing) or
    /// `postgres://…` / `postgresql://…`.
    ///
    /// # Errors
    /// [`StoreErrorKind::Incompatible`] for another scheme or a backend this build lacks (its
    /// feature is off); the backend's own errors otherwise.
    pub async fn open(url: &str, keys: KeyRing) -> Result<Self, StoreError> {
        #[cfg(feature = "sqlite")]
        if let Some(path) = url.strip_prefix("sqlite:") {
            return Ok(Self::Sqlite(SqliteStore::open(path, keys).await?));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(PostgresStore::connect(url, keys).await?));
        }
        let _ = keys;
        Err(StoreError::new(
            StoreErrorKind::Incompatible,
            "the store URL must be sqlite:<path> or postgres://… (with that feature built in)",
        ))
    }
}

impl AnyStore {
    /// Closes the backend's connections (see [`SqliteStore::close`](super::SqlStore::close)).
    pub async fn close(&self) {
        each!(self, store => store.close().await)
    }

    /// The schema version of the database (see [`SqlStore::schema_version`](super::SqlStore::schema_version)).
    ///
    /// # Errors
    /// Store failures.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        each!(self, store => store.schema_version().await)
    }
}

impl Store for AnyStore {
    async fn put_pending_totp(
        &self,
        user: &UserId,
        pending: PendingTotp,
    ) -> Result<(), StoreError> {
        each!(self, store => store.put_pending_totp(user, pending).await)
    }

    async fn pending_totp(&self, user: &UserId) -> Result<Option<PendingTotp>, StoreError> {
        each!(self, store => store.pending_totp(user).await)
    }

    async fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        confirmed_step: u64,
        now: Timestamp,
    ) -> Result<Activation, StoreError> {
        each!(self, store => {
            store
                .activate_pending_totp(user, factor, confirmed_step, now)
                .await
        })
    }

    async fn active_totp(&self, user: &UserId) -> Result<Option<TotpFactor>, StoreError> {
        each!(self, store => store.active_totp(user).await)
    }

    async fn accept_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> Result<StepAdvance, StoreError> {
        each!(self, store => store.accept_totp_step(user, factor, step, record).await)
    }

    async fn attempt_totp(
        &self,
        user: &UserId,
        attempt: TotpAttempt<'_>,
    ) -> Result<AttemptVerdict, StoreError> {
        each!(self, store => store.attempt_totp(user, attempt).await)
    }

    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> Result<Replacement, StoreError> {
        each!(self, store => store.replace_recovery_codes(user, codes).await)
    }

    async fn recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        each!(self, store => store.recovery_code(user, lookup).await)
    }

    async fn consume_recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Consumption, StoreError> {
        each!(self, store => store.consume_recovery_code(user, lookup).await)
    }

    async fn remaining_recovery_codes(&self, user: &UserId) -> Result<usize, StoreError> {
        each!(self, store => store.remaining_recovery_codes(user).await)
    }

    async fn remove_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        each!(self, store => store.remove_totp(user).await)
    }

    async fn throttle(&self, key: &ThrottleKey<'_>) -> Result<ThrottleState, StoreError> {
        each!(self, store => store.throttle(key).await)
    }

    async fn failing_accounts(&self) -> Result<Vec<(UserId, ThrottleState)>, StoreError> {
        each!(self, store => store.failing_accounts().await)
    }

    async fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        each!(self, store => store.reserve_attempt(key, policy, now).await)
    }

    async fn clear_throttle(&self, key: &ThrottleKey<'_>) -> Result<(), StoreError> {
        each!(self, store => store.clear_throttle(key).await)
    }

    async fn record_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        each!(self, store => store.record_audit(event).await)
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        each!(self, store => store.audit_events(query).await)
    }
}

impl SessionStore for AnyStore {
    async fn create_session(&self, record: SessionRecord) -> Result<(), StoreError> {
        each!(self, store => store.create_session(record).await)
    }

    async fn session_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        each!(self, store => store.session_by_token(token).await)
    }

    async fn session_and_binding_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<BindingRecord>)>, StoreError> {
        each!(self, store => store.session_and_binding_by_token(token).await)
    }

    async fn touch_session(&self, session: SessionId, at: Timestamp) -> Result<(), StoreError> {
        each!(self, store => store.touch_session(session, at).await)
    }

    async fn elevate_session(
        &self,
        session: SessionId,
        current: &TokenHash,
        elevation: Elevation,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.elevate_session(session, current, elevation).await)
    }

    async fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        context: RevocationContext,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        each!(self, store => store.revoke_sessions(scope, context).await)
    }

    async fn sessions_in(&self, scope: &RevocationScope) -> Result<Vec<SessionRecord>, StoreError> {
        each!(self, store => store.sessions_in(scope).await)
    }

    async fn session_counts(
        &self,
    ) -> Result<BTreeMap<(Option<OrgId>, Assurance), usize>, StoreError> {
        each!(self, store => store.session_counts().await)
    }

    async fn binding(&self, session: SessionId) -> Result<Option<BindingRecord>, StoreError> {
        each!(self, store => store.binding(session).await)
    }

    async fn swap_binding(
        &self,
        session: SessionId,
        expected: Option<u64>,
        record: BindingRecord,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.swap_binding(session, expected, record).await)
    }

    async fn purge_expired_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<usize, StoreError> {
        each!(self, store => store.purge_expired_sessions(now, idle_before).await)
    }
}

impl KeyRotation for AnyStore {
    async fn reseal_batch(
        &self,
        from: &ResealPosition,
        limit: usize,
    ) -> Result<ResealBatch, StoreError> {
        each!(self, store => store.reseal_batch(from, limit).await)
    }

    async fn sealed_secrets(&self) -> Result<SealedSecrets, StoreError> {
        each!(self, store => store.sealed_secrets().await)
    }

    async fn replace_key_ring(&self, keys: KeyRing) -> Result<(), StoreError> {
        each!(self, store => store.replace_key_ring(keys).await)
    }
}
