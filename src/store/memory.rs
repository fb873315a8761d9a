//! The in-memory store: one process, nothing persisted. For tests, demos and single-instance
//! deployments that accept losing factors on restart (most do not: use SQLite).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Activation, Consumption, PendingTotp, RecoveryCodeRecord, Reservation, StepAdvance, Store,
    ThrottleKey, TotpFactor,
};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{FactorId, UserId};
use crate::lockout::{ThrottlePolicy, ThrottleState};
use crate::recovery::Lookup;

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
    audit: VecDeque<AuditEvent>,
}

impl Inner {
    /// Appends to the audit trail, dropping the oldest event when it is full.
    fn append_audit(&mut self, event: AuditEvent) {
        if self.audit.len() >= MEMORY_AUDIT_CAPACITY {
            self.audit.pop_front();
        }
        self.audit.push_back(event);
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
        let mut inner = self.lock()?;
        let Some(entry) = inner.users.get_mut(user) else {
            return Ok(StepAdvance::NoSuchFactor);
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
            inner.append_audit(record);
        }
        Ok(advance)
    }

    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        codes: Vec<RecoveryCodeRecord>,
    ) -> Result<(), StoreError> {
        self.lock()?.users.entry(user.clone()).or_default().recovery = codes;
        Ok(())
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
            return Ok(Consumption::NotFound);
        };
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

    async fn reserve_attempt(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        let mut inner = self.lock()?;
        let counter = match *key {
            ThrottleKey::Account(user) => match inner.users.get_mut(user) {
                Some(entry) => &mut entry.throttle,
                None => &mut inner.users.entry(user.clone()).or_default().throttle,
            },
            ThrottleKey::Address(addr) => inner.addresses.entry(addr).or_default(),
        };
        let (next, reservation) = Reservation::decide(policy, counter, now);
        if let Some(next) = next {
            *counter = next;
        }
        Ok(reservation)
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

    async fn audit_trail(
        &self,
        user: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let inner = self.lock()?;
        let events = inner.audit.iter().rev();
        Ok(events
            .filter(|event| user.is_none_or(|user| event.user == *user))
            .take(limit)
            .cloned()
            .collect())
    }
}
