//! The in-memory store: one process, nothing persisted. For tests, demos and single-instance
//! deployments that accept losing factors on restart (most do not: use SQLite).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::sessions::{Elevation, RevocationContext, SessionStore};
use super::{
    Activation, AttemptVerdict, AuditEntry, AuditQuery, Consumption, PendingTotp,
    RecoveryCodeRecord, Replacement, Reservation, StepAdvance, Store, ThrottleKey, TotpAttempt,
    TotpFactor,
};
use crate::audit::AuditEvent;
use crate::audit::AuditKind;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{FactorId, SessionId, UserId};
use crate::lockout::{ThrottlePolicy, ThrottleState};
use crate::recovery::Lookup;
use crate::session::{Assurance, RevocationScope, TokenHash};
use crate::store::{BindingRecord, SessionRecord};

/// A store in process memory. Clones share the same data, like handles to one database.
/// The audit trail keeps the newest [`MEMORY_AUDIT_CAPACITY`] events.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

/// Keyed by portal user ids and normalised client addresses. The hasher is foldhash's
/// quality variant with a per-map random seed: several times cheaper than SipHash on the
/// verification path, and its random seeding keeps blind hash flooding impractical.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// The audit trail keeps this many newest events; older ones are dropped.
pub const MEMORY_AUDIT_CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    users: Map<UserId, UserEntry>,
    addresses: Map<IpAddr, ThrottleState>,
    /// The trail, each event with its sequence number (a cursor for `AuditQuery::after`).
    audit: VecDeque<AuditEntry>,
    /// The sequence number of the last event appended.
    audit_seq: u64,
    sessions: Map<SessionId, SessionRecord>,
    tokens: Map<TokenHash, SessionId>,
    bindings: Map<SessionId, BindingRecord>,
}

impl Inner {
    /// Appends to the audit trail, dropping the oldest event when it is full.
    fn append_audit(&mut self, event: AuditEvent) {
        if self.audit.len() >= MEMORY_AUDIT_CAPACITY {
            self.audit.pop_front();
        }
        self.audit_seq = self.audit_seq.saturating_add(1);
        self.audit.push_back(AuditEntry::new(self.audit_seq, event));
    }

    /// Removes one session with its token index entry and binding.
    /// [`Store::reserve_attempt`] inside the lock.
    fn reserve(
        &mut self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Reservation {
        let counter = match *key {
            // Looked up first: the id is cloned only for a user's first counter.
            ThrottleKey::Account(user) => match self.users.get_mut(user) {
                Some(entry) => &mut entry.throttle,
                None => &mut self.users.entry(user.clone()).or_default().throttle,
            },
            ThrottleKey::Address(addr) => self.addresses.entry(addr).or_default(),
        };
        let (next, reservation) = Reservation::decide(policy, counter, now);
        if let Some(next) = next {
            *counter = next;
        }
        reservation
    }

    /// The counter for `key` as it stands (no failures if there is none).
    fn state(&self, key: &ThrottleKey<'_>) -> ThrottleState {
        match *key {
            ThrottleKey::Account(user) => self
                .users
                .get(user)
                .map(|entry| entry.throttle)
                .unwrap_or_default(),
            ThrottleKey::Address(addr) => self.addresses.get(&addr).copied().unwrap_or_default(),
        }
    }

    /// Sets the counter for `key` back to `state` (an address's, or an existing user's).
    fn restore(&mut self, key: &ThrottleKey<'_>, state: ThrottleState) {
        match *key {
            ThrottleKey::Account(user) => {
                if let Some(entry) = self.users.get_mut(user) {
                    entry.throttle = state;
                }
            }
            ThrottleKey::Address(addr) => {
                self.addresses.insert(addr, state);
            }
        }
    }

    /// [`Store::accept_totp_step`] inside the lock.
    fn accept_step(
        &mut self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> StepAdvance {
        let Some(entry) = self.users.get_mut(user) else {
            return StepAdvance::NoSuchFactor;
        };
        let advance = match &mut entry.active {
            Some(active) if active.id == factor => {
                if step > active.last_step {
                    active.last_step = step;
                    entry.throttle = ThrottleState::default();
                    StepAdvance::Advanced
                } else {
                    StepAdvance::AlreadyUsed
                }
            }
            _ => StepAdvance::NoSuchFactor,
        };
        if advance == StepAdvance::Advanced {
            self.append_audit(record);
        }
        advance
    }

    fn remove_session(&mut self, id: SessionId) -> Option<SessionRecord> {
        let record = self.sessions.remove(&id)?;
        self.tokens.remove(&record.token);
        self.bindings.remove(&id);
        Some(record)
    }
}

/// Everything about one user, so each operation looks the user up once.
#[derive(Debug, Default)]
struct UserEntry {
    pending: Option<PendingTotp>,
    active: Option<TotpFactor>,
    recovery: Vec<RecoveryCodeRecord>,
    throttle: ThrottleState,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every operation is one critical section: atomic by construction. The guard is never
    /// held across an `.await`.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new(StoreErrorKind::Corrupt, "memory store lock poisoned"))
    }
}

impl Store for MemoryStore {
    async fn put_pending_totp(
        &self,
        user: &UserId,
        pending: PendingTotp,
    ) -> Result<(), StoreError> {
        self.lock()?.users.entry(user.clone()).or_default().pending = Some(pending);
        Ok(())
    }

    async fn pending_totp(&self, user: &UserId) -> Result<Option<PendingTotp>, StoreError> {
        Ok(self
            .lock()?
            .users
            .get(user)
            .and_then(|entry| entry.pending.clone()))
    }

    async fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        confirmed_step: u64,
        now: Timestamp,
    ) -> Result<Activation, StoreError> {
        let mut inner = self.lock()?;
        let Some(entry) = inner.users.get_mut(user) else {
            return Ok(Activation::NotPending);
        };
        let Some(pending) = entry.pending.take_if(|pending| pending.id == factor) else {
            return Ok(Activation::NotPending);
        };
        if pending.expires_at <= now {
            entry.pending = Some(pending);
            return Ok(Activation::Expired);
        }
        if entry.active.as_ref().map(|active| active.id) != pending.replaces {
            return Ok(Activation::Superseded);
        }
        entry.active = Some(TotpFactor {
            id: pending.id,
            secret: pending.secret,
            params: pending.params,
            last_step: confirmed_step,
            activated_at: now,
        });
        Ok(Activation::Activated)
    }

    async fn active_totp(&self, user: &UserId) -> Result<Option<TotpFactor>, StoreError> {
        Ok(self
            .lock()?
            .users
            .get(user)
            .and_then(|entry| entry.active.clone()))
    }

    async fn accept_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
        record: AuditEvent,
    ) -> Result<StepAdvance, StoreError> {
        Ok(self.lock()?.accept_step(user, factor, step, record))
    }

    async fn attempt_totp(
        &self,
        user: &UserId,
        attempt: TotpAttempt<'_>,
    ) -> Result<AttemptVerdict, StoreError> {
        let mut inner = self.lock()?;
        let mut address = None;
        if let Some((key, policy)) = &attempt.address {
            let before = inner.state(key);
            let reserved = inner.reserve(key, policy, attempt.now);
            if let Err(refused) = AttemptVerdict::counted(reserved, true) {
                return Ok(refused);
            }
            address = Some((key, before));
        }
        let reserved = inner.reserve(&ThrottleKey::Account(user), attempt.account, attempt.now);
        let account = match AttemptVerdict::counted(reserved, false) {
            Ok(account) => account,
            Err(refused) => return Ok(refused),
        };
        let advance = attempt
            .fresh_step
            .map(|step| inner.accept_step(user, attempt.factor, step, attempt.accepted));
        // An accepted code is no failure of its address: its count is taken back.
        if advance == Some(StepAdvance::Advanced) {
            if let Some((key, before)) = address {
                inner.restore(key, before);
            }
        }
        Ok(AttemptVerdict::after(account, advance))
    }

    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> Result<Replacement, StoreError> {
        let mut inner = self.lock()?;
        let entry = inner.users.entry(user.clone()).or_default();
        if entry.active.is_none() && !codes.is_empty() {
            return Ok(Replacement::NoActiveFactor);
        }
        entry.recovery = codes;
        Ok(Replacement::Replaced)
    }

    async fn recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        let inner = self.lock()?;
        let entry = inner.users.get(user);
        let code = entry.and_then(|e| e.recovery.iter().find(|c| c.lookup == lookup));
        Ok(code.cloned())
    }

    async fn consume_recovery_code(
        &self,
        user: &UserId,
        lookup: Lookup,
    ) -> Result<Consumption, StoreError> {
        let mut inner = self.lock()?;
        let Some(entry) = inner.users.get_mut(user) else {
            return Ok(Consumption::NoActiveFactor);
        };
        if entry.active.is_none() {
            return Ok(Consumption::NoActiveFactor);
        }
        let Some(code) = entry.recovery.iter_mut().find(|c| c.lookup == lookup) else {
            return Ok(Consumption::NotFound);
        };
        if code.used {
            return Ok(Consumption::AlreadyUsed);
        }
        code.used = true;
        entry.throttle = ThrottleState::default();
        let remaining = entry.recovery.iter().filter(|c| !c.used).count();
        Ok(Consumption::Consumed { remaining })
    }

    async fn remaining_recovery_codes(&self, user: &UserId) -> Result<usize, StoreError> {
        let inner = self.lock()?;
        let entry = inner.users.get(user);
        Ok(entry.map_or(0, |e| e.recovery.iter().filter(|c| !c.used).count()))
    }

    async fn remove_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let Some(entry) = inner.users.get_mut(user) else {
            return Ok(false);
        };
        let had_active = entry.active.take().is_some();
        let had_pending = entry.pending.take().is_some();
        entry.recovery.clear();
        Ok(had_active || had_pending)
    }

    async fn throttle(&self, key: &ThrottleKey<'_>) -> Result<ThrottleState, StoreError> {
        let inner = self.lock()?;
        let state = match *key {
            ThrottleKey::Account(user) => inner.users.get(user).map(|entry| entry.throttle),
            ThrottleKey::Address(addr) => inner.addresses.get(&addr).copied(),
        };
        Ok(state.unwrap_or_default())
    }

    async fn failing_accounts(&self) -> Result<Vec<(UserId, ThrottleState)>, StoreError> {
        let inner = self.lock()?;
        let mut failing: Vec<(UserId, ThrottleState)> = inner
            .users
            .iter()
            .filter(|(_, entry)| entry.throttle.failures > 0)
            .map(|(user, entry)| (user.clone(), entry.throttle))
            .collect();
        failing.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(failing)
    }

    async fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        Ok(self.lock()?.reserve(key, policy, now))
    }

    async fn clear_throttle(&self, key: &ThrottleKey<'_>) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match *key {
            ThrottleKey::Account(user) => {
                if let Some(entry) = inner.users.get_mut(user) {
                    entry.throttle = ThrottleState::default();
                }
            }
            ThrottleKey::Address(addr) => {
                inner.addresses.remove(&addr);
            }
        }
        Ok(())
    }

    async fn record_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.lock()?.append_audit(event);
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let inner = self.lock()?;
        let selected = inner.audit.iter().filter(|entry| {
            query.after.is_none_or(|after| entry.seq > after) && query.matches(&entry.event)
        });
        // After a cursor, oldest first; otherwise newest first.
        let entries = match query.after {
            Some(_) => selected.take(query.limit).cloned().collect(),
            None => selected.rev().take(query.limit).cloned().collect(),
        };
        Ok(entries)
    }
}

impl SessionStore for MemoryStore {
    async fn create_session(&self, record: SessionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.sessions.contains_key(&record.id) || inner.tokens.contains_key(&record.token) {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                "a session with this id or token exists",
            ));
        }
        inner.tokens.insert(record.token, record.id);
        inner.sessions.insert(record.id, record);
        Ok(())
    }

    async fn session_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let inner = self.lock()?;
        let id = inner.tokens.get(token);
        Ok(id.and_then(|id| inner.sessions.get(id)).cloned())
    }

    async fn touch_session(&self, session: SessionId, at: Timestamp) -> Result<(), StoreError> {
        if let Some(record) = self.lock()?.sessions.get_mut(&session) {
            record.last_seen = record.last_seen.max(at);
        }
        Ok(())
    }

    async fn elevate_session(
        &self,
        session: SessionId,
        current: &TokenHash,
        elevation: Elevation,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let Some(record) = inner.sessions.get_mut(&session) else {
            return Ok(false);
        };
        if record.token != *current {
            return Ok(false);
        }
        let old = std::mem::replace(&mut record.token, elevation.token);
        record.assurance = Assurance::SecondFactor;
        record.second_factor = Some(elevation.second_factor);
        record.signals = elevation.signals;
        record.expires_at = elevation.expires_at;
        inner.tokens.remove(&old);
        inner.tokens.insert(elevation.token, session);
        if let Some(offer) = elevation.binding {
            let version = inner.bindings.get(&session).map_or(0, |b| b.version) + 1;
            inner
                .bindings
                .insert(session, BindingRecord { version, ..offer });
        }
        inner.append_audit(elevation.record);
        Ok(true)
    }

    async fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        context: RevocationContext,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut inner = self.lock()?;
        let doomed: Vec<SessionId> = inner
            .sessions
            .values()
            .filter(|record| in_scope(record, scope))
            .map(|record| record.id)
            .collect();
        let mut events = Vec::with_capacity(doomed.len());
        for id in doomed {
            if let Some(record) = inner.remove_session(id) {
                let kind = AuditKind::SessionRevoked {
                    session: id,
                    reason: context.reason,
                };
                let event = AuditEvent::new(context.at, record.user, context.client, kind)
                    .in_org(record.org);
                inner.append_audit(event.clone());
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn sessions_in(&self, scope: &RevocationScope) -> Result<Vec<SessionRecord>, StoreError> {
        let inner = self.lock()?;
        let mut sessions: Vec<SessionRecord> = inner
            .sessions
            .values()
            .filter(|record| in_scope(record, scope))
            .cloned()
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(sessions)
    }

    async fn binding(&self, session: SessionId) -> Result<Option<BindingRecord>, StoreError> {
        Ok(self.lock()?.bindings.get(&session).cloned())
    }

    async fn swap_binding(
        &self,
        session: SessionId,
        expected: Option<u64>,
        record: BindingRecord,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        if !inner.sessions.contains_key(&session) {
            return Ok(false);
        }
        let current = inner.bindings.get(&session).map(|binding| binding.version);
        if current != expected {
            return Ok(false);
        }
        inner.bindings.insert(session, record);
        Ok(true)
    }

    async fn purge_expired_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let expired: Vec<SessionId> = inner
            .sessions
            .values()
            .filter(|record| record.expires_at <= now || record.last_seen < idle_before)
            .map(|record| record.id)
            .collect();
        for id in &expired {
            inner.remove_session(*id);
        }
        Ok(expired.len())
    }
}

/// Whether `record` falls in `scope`.
fn in_scope(record: &SessionRecord, scope: &RevocationScope) -> bool {
    match scope {
        RevocationScope::Session(id) => record.id == *id,
        RevocationScope::User { user, except } => {
            record.user == *user && Some(record.id) != *except
        }
        RevocationScope::Org(org) => record.org.as_ref() == Some(org),
        RevocationScope::IssuedBefore(instant) => record.created_at < *instant,
    }
}
