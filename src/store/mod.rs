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

mod memory;
mod sessions;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};

pub use self::memory::{MemoryStore, MEMORY_AUDIT_CAPACITY};
pub use self::sessions::{Elevation, RevocationContext, SessionStore};
#[cfg(feature = "postgres")]
pub use self::sql::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use self::sql::sqlite::SqliteStore;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::ids::{FactorId, UserId};
use crate::lockout::{Gate, ThrottlePolicy, ThrottleState};
use crate::recovery::Lookup;
use crate::secret::TotpSecret;
use crate::totp::TotpParams;

/// An active TOTP factor.
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct TotpFactor {
    /// The factor's id.
    pub id: FactorId,
    /// The shared secret.
    pub secret: TotpSecret,
    /// Hash, digits and period.
    pub params: TotpParams,
    /// The last accepted time step; no step at or below it is accepted again.
    pub last_step: u64,
    /// When the factor was confirmed.
    pub activated_at: Timestamp,
}

/// A factor waiting for its first valid code.
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct PendingTotp {
    /// The factor's id (kept when it becomes active).
    pub id: FactorId,
    /// The shared secret.
    pub secret: TotpSecret,
    /// Hash, digits and period.
    pub params: TotpParams,
    /// The active factor this one replaces (re-enrolment), or `None` for a first enrolment.
    /// Activation fails if the active factor is no longer this one.
    pub replaces: Option<FactorId>,
    /// When enrolment began.
    pub created_at: Timestamp,
    /// When the pending factor stops being confirmable.
    pub expires_at: Timestamp,
}

/// One stored recovery code: its lookup, its argon2id PHC string, whether it was used.
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct RecoveryCodeRecord {
    /// The non-secret lookup prefix.
    pub lookup: Lookup,
    /// argon2id PHC string of the whole normalised code.
    pub phc: String,
    /// Whether the code was used (used codes stay, so reuse can be told from a typo).
    pub used: bool,
}

/// Result of [`Store::consume_recovery_code`].
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

/// Result of [`Store::replace_recovery_codes`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Replacement {
    /// The old set is gone and the new one stored.
    Replaced,
    /// The user has no active factor (it was removed, or never confirmed): recovery codes
    /// back a factor and cannot exist without one. Nothing changed.
    NoActiveFactor,
}

/// Result of [`Store::activate_pending_totp`].
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

/// Result of [`Store::accept_totp_step`].
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

/// One TOTP verification as one store operation ([`Store::attempt_totp`]): the attempt is
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

/// Result of [`Store::attempt_totp`].
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
    /// What a store does with a reservation inside [`Store::attempt_totp`]: the counter
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

/// What a throttle counter is attached to (borrowed: building one costs nothing).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ThrottleKey<'a> {
    /// One user's account: shared by every second-factor path.
    Account(&'a UserId),
    /// One client address: an IPv4 address, or an IPv6 prefix (by default a /64, one
    /// subscriber's allocation; see [`ThrottleKey::for_address_in_prefix`]).
    Address(IpAddr),
}

impl ThrottleKey<'_> {
    /// The IPv6 prefix length one address bucket covers by default: a /64, what one
    /// subscriber or LAN is given.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// The key for a client address, normalised: IPv4-mapped IPv6 becomes IPv4, other IPv6
    /// addresses are cut to their /64 so one client cannot rotate through its own prefix.
    pub fn for_address(addr: IpAddr) -> Self {
        Self::for_address_in_prefix(addr, Self::DEFAULT_IPV6_PREFIX)
    }

    /// Like [`ThrottleKey::for_address`], with IPv6 addresses cut to their
    /// `/ipv6_prefix` (at most 128) instead of their /64.
    pub fn for_address_in_prefix(addr: IpAddr, ipv6_prefix: u8) -> Self {
        let normalized = match addr.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let kept = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - kept).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Self::Address(normalized)
    }

    /// A stable text form for SQL backends: `account:<user id>` or `address:<ip>`.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Account(user) => format!("account:{user}"),
            Self::Address(addr) => format!("address:{addr}"),
        }
    }
}

/// Result of [`Store::reserve_attempt`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Reservation {
    /// The gate was open; the attempt is counted as a failure until a success resets it.
    /// Holds the counter after counting.
    Counted(ThrottleState),
    /// The gate was closed ([`Gate::Backoff`] or [`Gate::Locked`]); nothing was counted.
    Refused(Gate),
}

impl Reservation {
    /// What a store does atomically: evaluate `policy` on `state` at `now` and, if the gate is
    /// open, count one failure. Returns the new state to write (if any) and the reservation.
    pub fn decide(
        policy: &ThrottlePolicy,
        state: &ThrottleState,
        now: Timestamp,
    ) -> (Option<ThrottleState>, Self) {
        match policy.gate(state, now) {
            Gate::Open => {
                let next = policy.record_failure(state, now);
                (Some(next), Self::Counted(next))
            }
            closed => (None, Self::Refused(closed)),
        }
    }
}

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
    /// verification is then one durable commit.
    ///
    /// The default runs [`Store::reserve_attempt`] and [`Store::accept_totp_step`] one after
    /// the other: each atomic, the pair not (a crash in between leaves a counted attempt whose
    /// code was not accepted). verrou's stores override it.
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

    /// The newest `limit` events of the audit trail, newest first: `user`'s, or everyone's.
    fn audit_trail(
        &self,
        user: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
}

/// What one pass of [`KeyRotation::reseal_stale`] did.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Stored secrets (pending and active factors) looked at.
    pub scanned: usize,
    /// Secrets re-sealed under the active key.
    pub resealed: usize,
    /// Secrets still sealed with another key: beyond the pass's limit, or changed by a
    /// concurrent writer while the pass re-sealed them. Zero means the rotation is complete
    /// (but for the `unreadable` ones).
    pub stale: usize,
    /// Secrets that could not be read (a malformed blob, a key missing from the ring, a
    /// failed authentication): reported and skipped, so one bad row does not stop the
    /// rotation of the others. Each needs an operator (usually a factor reset).
    pub unreadable: Vec<UnreadableSecret>,
}

/// A stored secret a rotation could not open, by the row it sits in (ids only: never the
/// blob).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct UnreadableSecret {
    /// The user the row belongs to, as stored.
    pub user: String,
    /// The factor id, as stored.
    pub factor: String,
    /// Why it could not be opened.
    pub reason: crate::keyring::KeyRingError,
}

/// Stores that keep TOTP secrets sealed under a [`KeyRing`](crate::keyring::KeyRing): re-sealing them
/// under the ring's active key after a rotation.
///
/// Safe while verifications run: each secret is replaced only if its row still holds the
/// exact blob that was opened (compare-and-set), and verification never writes the blob.
/// Resumable and idempotent: a pass skips secrets already under the active key, so an
/// interrupted rotation is finished by running it again, and a finished one does nothing.
pub trait KeyRotation: Store {
    /// Scans every stored secret in pages and re-seals at most `limit` of those sealed with a
    /// key other than the active one. A secret that cannot be opened is listed in
    /// [`ResealReport::unreadable`] and skipped; the pass goes on.
    fn reseal_stale(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<ResealReport, StoreError>> + Send;

    /// Re-seals every stored secret under the active key: passes of
    /// [`KeyRotation::reseal_stale`] until one finds nothing stale (at most five passes; a
    /// non-zero `stale` in the result means writers with an older active key are still
    /// running). The sum of the passes is returned.
    fn rotate_keys(&self) -> impl Future<Output = Result<ResealReport, StoreError>> + Send {
        async {
            let mut total = ResealReport::default();
            for _ in 0..5 {
                let pass = self.reseal_stale(usize::MAX).await?;
                total.scanned += pass.scanned;
                total.resealed += pass.resealed;
                total.stale = pass.stale;
                // Every pass scans every row: the last one's list is the current one.
                total.unreadable = pass.unreadable;
                if pass.stale == 0 {
                    break;
                }
            }
            Ok(total)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ThrottleKey::for_address(a), ThrottleKey::for_address(b));
        assert_ne!(ThrottleKey::for_address(a), ThrottleKey::for_address(c));
        assert_eq!(
            ThrottleKey::for_address(a).storage_key(),
            "address:2001:db8:1:2::"
        );
    }

    #[test]
    fn the_ipv6_prefix_is_configurable() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:2::1".parse().unwrap();
        let key = |addr, prefix| ThrottleKey::for_address_in_prefix(addr, prefix);
        // One /48 is 65,536 /64s: a /48 bucket holds them all.
        assert_eq!(key(a, 48), key(b, 48));
        assert_ne!(key(a, 48), key(c, 48));
        assert_eq!(key(a, 48).storage_key(), "address:2001:db8:1::");
        assert_ne!(key(a, 64), key(b, 64));
        assert_eq!(key(a, 128), ThrottleKey::Address(a));
        assert_eq!(key(a, 200), ThrottleKey::Address(a));
        assert_eq!(key(a, 0).storage_key(), "address:::");
        assert_eq!(ThrottleKey::for_address(a), key(a, 64));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            ThrottleKey::for_address(mapped),
            ThrottleKey::for_address(plain)
        );
    }
}
