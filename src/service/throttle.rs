//! The throttle as the flows use it: an attempt counted before its check, refusals turned
//! into outcomes.

use std::time::Duration;

use super::{ClientContext, EnrollmentOutcome, RecoveryOutcome, TotpOutcome, Verrou};
use crate::audit::AuditKind;
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::UserId;
use crate::lockout::{Gate, ThrottlePolicy, ThrottleState};
use crate::store::{Reservation, Store, ThrottleKey};

/// Why the throttle refused an attempt.
pub(super) enum Refusal {
    Throttled(Duration),
    Locked(Option<Timestamp>),
}

impl Refusal {
    /// The refusal a closed gate means at `now`.
    pub(super) fn from_gate(gate: Gate, now: Timestamp) -> Self {
        match gate {
            Gate::Backoff { until } => Self::Throttled(until.duration_since(now)),
            Gate::Locked { until } => Self::Locked(until),
            // A store that refuses with an open gate is broken: fail closed.
            _ => Self::Throttled(Duration::from_secs(1)),
        }
    }
}

/// Each flow's outcome for a refused attempt: the one place a refusal becomes an outcome.
macro_rules! refusal_outcome {
    ($($outcome:ty),*) => {$(
        impl From<Refusal> for $outcome {
            fn from(refusal: Refusal) -> Self {
                match refusal {
                    Refusal::Throttled(retry_after) => Self::Throttled { retry_after },
                    Refusal::Locked(until) => Self::Locked { until },
                }
            }
        }
    )*};
}
refusal_outcome!(TotpOutcome, EnrollmentOutcome, RecoveryOutcome);

/// A counted attempt: the account counter after counting, to report a lock it started.
pub(super) struct Counted {
    pub(super) account: ThrottleState,
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// Counts the attempt against the client address (if configured and known), then the
    /// account, *before* the code is compared: a success resets the account's count. A
    /// refusal by either means the code is not checked.
    pub(super) async fn reserve_attempt(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
    ) -> Result<Result<Counted, Refusal>, Error> {
        if let Some((key, policy)) = self.address_throttle(ctx) {
            if let Err(refusal) = self.reserve(&key, policy, now).await? {
                self.report_refusal(user, ctx, now, &refusal).await?;
                return Ok(Err(refusal));
            }
        }
        let key = ThrottleKey::Account(user);
        match self
            .reserve(&key, &self.config.account_throttle, now)
            .await?
        {
            Ok(account) => Ok(Ok(Counted { account })),
            Err(refusal) => {
                self.report_refusal(user, ctx, now, &refusal).await?;
                Ok(Err(refusal))
            }
        }
    }

    /// The client address's counter and its policy, when the address throttle is on and the
    /// request's address is known.
    pub(super) fn address_throttle(
        &self,
        ctx: &ClientContext,
    ) -> Option<(ThrottleKey<'static>, &ThrottlePolicy)> {
        let policy = self.config.address_throttle.as_ref()?;
        let addr = ctx.addr?;
        let key = ThrottleKey::for_address_in_prefix(addr, self.config.ipv6_throttle_prefix);
        Some((key, policy))
    }

    /// Counts one failure on `key` if its gate is open (atomically, in the store).
    pub(super) async fn reserve(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Result<ThrottleState, Refusal>, Error> {
        Ok(match self.store.reserve_attempt(key, policy, now).await? {
            Reservation::Counted(state) => Ok(state),
            Reservation::Refused(gate) => Err(Refusal::from_gate(gate, now)),
        })
    }

    pub(super) async fn report_refusal(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        refusal: &Refusal,
    ) -> Result<(), Error> {
        let kind = match *refusal {
            Refusal::Throttled(retry_after) => AuditKind::Throttled { retry_after },
            Refusal::Locked(until) => AuditKind::Locked { until },
        };
        self.emit(user, ctx, now, kind).await
    }

    /// After a failed check: if the counted failure started a lock, say so.
    pub(super) async fn report_lock(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        reservation: &Counted,
    ) -> Result<(), Error> {
        if let Gate::Locked { until } = self.config.account_throttle.gate(&reservation.account, now)
        {
            self.emit(user, ctx, now, AuditKind::LockEngaged { until })
                .await?;
        }
        Ok(())
    }
}
