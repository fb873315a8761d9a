//! What the store's atomic operations answer, and the one operation that takes parameters
//! of its own ([`TotpAttempt`]).

use super::{Reservation, ThrottleKey};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::ids::FactorId;
use crate::lockout::{Gate, ThrottlePolicy, ThrottleState};

/// Result of [`Store::consume_recovery_code`](super::Store::consume_recovery_code).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Consumption {
    /// The code was unused and is now used; `remaining` unused codes are left.
    Consumed {
        /// Unused codes left in the set.
        remaining: usize,
    },
    /// The code was already used.
    AlreadyUsed,
    /// No code with that lookup (the set was regenerated meanwhile, or never had it).
    NotFound,
    /// The user has no active factor: no recovery code is accepted (nothing changed).
    NoActiveFactor,
}

/// Result of [`Store::replace_recovery_codes`](super::Store::replace_recovery_codes).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Replacement {
    /// The old set is gone and the new one stored.
    Replaced,
    /// The user has no active factor (it was removed, or never confirmed): recovery codes
    /// back a factor and cannot exist without one. Nothing changed.
    NoActiveFactor,
}

/// Result of [`Store::activate_pending_totp`](super::Store::activate_pending_totp).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// The pending factor is now the active one.
    Activated,
    /// No pending factor with that id (never started, already confirmed, or replaced).
    NotPending,
    /// The pending factor expired.
    Expired,
    /// The active factor changed since enrolment began; the pending factor was discarded.
    Superseded,
}

/// Result of [`Store::accept_totp_step`](super::Store::accept_totp_step).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum StepAdvance {
    /// The step was later than the last accepted one and is now recorded.
    Advanced,
    /// The step is at or below the last accepted one: refused, nothing changed.
    AlreadyUsed,
    /// The user's active factor is not (or no longer) the given one.
    NoSuchFactor,
}

/// One TOTP verification as one store operation ([`Store::attempt_totp`](super::Store::attempt_totp)): the attempt is
/// counted against the throttle and, if admitted and the code matched a fresh step, the step
/// is accepted with its audit record, all in one write transaction.
#[derive(Clone, Debug)]
#[allow(
    clippy::exhaustive_structs,
    reason = "parameters the service builds and stores read"
)]
pub struct TotpAttempt<'a> {
    /// The factor the code was checked against.
    pub factor: FactorId,
    /// When.
    pub now: Timestamp,
    /// The client address's counter and policy, when the address throttle is on.
    pub address: Option<(ThrottleKey<'a>, &'a ThrottlePolicy)>,
    /// The account's policy.
    pub account: &'a ThrottlePolicy,
    /// The step the code matched, if it is later than the last accepted step the check saw.
    pub fresh_step: Option<u64>,
    /// The audit record to store with an acceptance.
    pub accepted: AuditEvent,
}

/// Result of [`Store::attempt_totp`](super::Store::attempt_totp).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum AttemptVerdict {
    /// A throttle refused the attempt (`by_address` says which; an address refusal comes
    /// first and leaves the account untouched): nothing about the code may be revealed.
    Refused {
        /// Whether the address's counter refused (else the account's).
        by_address: bool,
        /// Its gate.
        gate: Gate,
    },
    /// Counted, then accepted: the step is recorded, the account's count reset and the audit
    /// record stored.
    Accepted,
    /// Counted, and not accepted: the code matched no fresh step, or its step was accepted
    /// meanwhile (`step_taken`). `account` is the counter after counting.
    Rejected {
        /// The account's counter after this attempt.
        account: ThrottleState,
        /// The matched step had been accepted meanwhile (a replay lost the race).
        step_taken: bool,
    },
    /// Counted; the user's active factor is no longer the one checked.
    NoSuchFactor {
        /// The account's counter after this attempt.
        account: ThrottleState,
    },
}

impl AttemptVerdict {
    /// What a store does with a reservation inside [`Store::attempt_totp`](super::Store::attempt_totp): the counter
    /// after counting, or the refusal to return (`by_address` says whose).
    pub fn counted(reservation: Reservation, by_address: bool) -> Result<ThrottleState, Self> {
        match reservation {
            Reservation::Counted(state) => Ok(state),
            Reservation::Refused(gate) => Err(Self::Refused { by_address, gate }),
        }
    }

    /// The verdict once the account's counter is `account` and the step's compare-and-set
    /// returned `advance` (`None` when the code matched no fresh step).
    pub fn after(account: ThrottleState, advance: Option<StepAdvance>) -> Self {
        match advance {
            Some(StepAdvance::Advanced) => Self::Accepted,
            None => Self::Rejected {
                account,
                step_taken: false,
            },
            Some(StepAdvance::AlreadyUsed) => Self::Rejected {
                account,
                step_taken: true,
            },
            Some(StepAdvance::NoSuchFactor) => Self::NoSuchFactor { account },
        }
    }
}
