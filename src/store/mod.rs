//! Storage: the atomic operations verrou's policy needs, and the backends.
//!
//! Every method is one atomic operation named for its intent. There is no "read, modify in
//! Rust, write back" pair that two requests could interleave:
//! - [`Store::accept_totp_step`] moves the last accepted time step forward only if the new
//!   step is later (one conditional update) and resets the account's failure count and
//!   records the acceptance's audit event with it, so one code is accepted once, however many
//!   requests or instances race, and never without its audit record;
//! - [`Store::activate_pending_totp`] promotes a pending factor only if it is still the
//!   pending one, unexpired, and the active factor is still the one it was meant to replace;
//! - [`Store::reserve_attempt`] checks the throttle and counts the attempt in one step, so a
//!   burst of requests cannot all pass the gate before any of them is counted.
//!
//! The same conformance suite (`tests/conformance/`) runs against every backend.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod any;
mod audit_query;
mod factors;
mod memory;
mod outcomes;
mod records;
mod rotation;
mod sessions;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod throttle;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use self::any::AnyStore;
pub use self::audit_query::{AuditEntry, AuditQuery};
pub use self::factors::Store;
pub use self::memory::{MemoryStore, MEMORY_AUDIT_CAPACITY};
pub use self::rotation::{
    KeyRotation, ResealBatch, ResealPosition, ResealReport, RotationProgress, SealedSecrets,
    UnreadableSecret,
};
#[cfg(feature = "postgres")]
pub use self::sql::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use self::sql::sqlite::SqliteStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use self::sql::SqlStore;

// The crate's own code names the store's contract by these short paths: one list, the
// `backend` module's.
pub(crate) use self::backend::*;

/// What implementing a store takes: the [`Store`] and [`SessionStore`] traits, the records
/// they persist, the answers of their atomic operations, and the pure rules they apply
/// atomically ([`Reservation::decide`], [`AttemptVerdict::counted`]). A portal never needs
/// this module; it picks a store from [`crate::store`].
///
/// An implementation must pass the conformance suite in `tests/conformance/` (see the
/// README's "Storage backends").
pub mod backend {
    pub use super::audit_query::{AuditEntry, AuditQuery};
    pub use super::factors::Store;
    pub use super::outcomes::{
        Activation, AttemptVerdict, Consumption, Replacement, StepAdvance, TotpAttempt,
    };
    pub use super::records::{
        BindingRecord, IssuedChallenge, IssuedCookie, PendingTotp, RecoveryCodeRecord,
        SessionRecord, TotpFactor,
    };
    pub use super::rotation::{
        KeyRotation, ResealBatch, ResealPosition, ResealReport, RotationProgress, SealedSecrets,
        UnreadableSecret,
    };
    pub use super::sessions::{Elevation, RevocationContext, SessionStore};
    pub use super::throttle::{Reservation, ThrottleKey};
    pub use crate::lockout::{Gate, ThrottleState};
}
