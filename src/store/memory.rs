//! The in-memory store: one process, nothing persisted. For tests, demos and single-instance
//! deployments that accept losing factors on restart (most do not: use SQLite).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Activation, PendingTotp, StepAdvance, Store, ThrottleKey, ThrottleRecord, TotpFactor,
};
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{FactorId, UserId};
use crate::lockout::ThrottleState;

/// A store in process memory. Clones share the same data, like handles to one database.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<UserId, PendingTotp>,
    active: HashMap<UserId, TotpFactor>,
    throttle: HashMap<ThrottleKey, ThrottleRecord>,
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
    async fn put_pending_totp(&self, user: &UserId, pending: PendingTotp) -> Result<(), StoreError> {
        self.lock()?.pending.insert(user.clone(), pending);
        Ok(())
    }

    async fn pending_totp(&self, user: &UserId) -> Result<Option<PendingTotp>, StoreError> {
        Ok(self.lock()?.pending.get(user).cloned())
    }

    async fn activate_pending_totp(
        &self,
        user: &UserId,
        factor: FactorId,
        confirmed_step: u64,
        now: Timestamp,
    ) -> Result<Activation, StoreError> {
        let mut inner = self.lock()?;
        let Some(pending) = inner.pending.get(user).filter(|p| p.id == factor) else {
            return Ok(Activation::NotPending);
        };
        if pending.expires_at <= now {
            return Ok(Activation::Expired);
        }
        let current = inner.active.get(user).map(|active| active.id);
        if current != pending.replaces {
            inner.pending.remove(user);
            return Ok(Activation::Superseded);
        }
        let Some(pending) = inner.pending.remove(user) else {
            return Ok(Activation::NotPending);
        };
        inner.active.insert(
            user.clone(),
            TotpFactor {
                id: pending.id,
                secret: pending.secret,
                params: pending.params,
                last_step: confirmed_step,
                activated_at: now,
            },
        );
        Ok(Activation::Activated)
    }

    async fn active_totp(&self, user: &UserId) -> Result<Option<TotpFactor>, StoreError> {
        Ok(self.lock()?.active.get(user).cloned())
    }

    async fn advance_totp_step(
        &self,
        user: &UserId,
        factor: FactorId,
        step: u64,
    ) -> Result<StepAdvance, StoreError> {
        let mut inner = self.lock()?;
        match inner.active.get_mut(user) {
            Some(active) if active.id == factor => {
                if step > active.last_step {
                    active.last_step = step;
                    Ok(StepAdvance::Advanced)
                } else {
                    Ok(StepAdvance::AlreadyUsed)
                }
            }
            _ => Ok(StepAdvance::NoSuchFactor),
        }
    }

    async fn remove_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let had_active = inner.active.remove(user).is_some();
        let had_pending = inner.pending.remove(user).is_some();
        Ok(had_active || had_pending)
    }

    async fn throttle(&self, key: &ThrottleKey) -> Result<ThrottleRecord, StoreError> {
        Ok(self.lock()?.throttle.get(key).copied().unwrap_or_default())
    }

    async fn swap_throttle(
        &self,
        key: &ThrottleKey,
        expected_version: u64,
        state: ThrottleState,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let record = inner.throttle.entry(key.clone()).or_default();
        if record.version != expected_version {
            return Ok(false);
        }
        record.state = state;
        record.version = record.version.wrapping_add(1);
        Ok(true)
    }

    async fn clear_throttle(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if let Some(record) = inner.throttle.get_mut(key) {
            record.state = ThrottleState::default();
            record.version = record.version.wrapping_add(1);
        }
        Ok(())
    }
}
