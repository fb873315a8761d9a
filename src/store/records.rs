//! What stores persist: one record per row. Secrets are held as verrou's secret types (the
//! SQL stores seal them at rest), tokens and cookies only as hashes.

use crate::clock::Timestamp;
use crate::ids::{FactorId, OrgId, SessionId, UserId};
use crate::recovery::Lookup;
use crate::secret::TotpSecret;
use crate::session::proof::DeviceKey;
use crate::session::{Assurance, BindingKind, Challenge, SecondFactorMethod, TokenHash};
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

/// One stored session: what stores keep (the token only as its hash).
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct SessionRecord {
    /// The public handle.
    pub id: SessionId,
    /// SHA-256 of the current session token.
    pub token: TokenHash,
    /// Whose session.
    pub user: UserId,
    /// The user's organisation, if the portal has tenants.
    pub org: Option<OrgId>,
    /// What the session proved.
    pub assurance: Assurance,
    /// When it was created (its absolute expiry counts from here).
    pub created_at: Timestamp,
    /// When it was last used (to within the touch interval).
    pub last_seen: Timestamp,
    /// Its absolute expiry.
    pub expires_at: Timestamp,
    /// The last second factor passed in it, and how.
    pub second_factor: Option<(Timestamp, SecondFactorMethod)>,
    /// Digest of the soft signals seen when the session last proved itself.
    pub signals: Option<TokenHash>,
}

/// A challenge the server issued and when it stops being answerable.
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct IssuedChallenge {
    /// The challenge.
    pub challenge: Challenge,
    /// Its expiry.
    pub expires_at: Timestamp,
}

/// A bound cookie value (hashed) and its expiry.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct IssuedCookie {
    /// SHA-256 of the value.
    pub hash: TokenHash,
    /// Its expiry.
    pub expires_at: Timestamp,
}

/// A session's device binding: its own record, changed only by compare-and-set on `version`
/// (never rewritten with the session on ordinary requests — the race the DBSC notes warn
/// of).
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct BindingRecord {
    /// Incremented by every change.
    pub version: u64,
    /// When binding was offered (the grace counts from here).
    pub offered_at: Timestamp,
    /// The registered key and client kind; `None` while only offered.
    pub key: Option<(DeviceKey, BindingKind)>,
    /// The newest unanswered challenge.
    pub challenge: Option<IssuedChallenge>,
    /// The one before it (a refresh may race a 403): answerable until its own expiry.
    pub previous_challenge: Option<IssuedChallenge>,
    /// The current bound cookie.
    pub cookie: Option<IssuedCookie>,
    /// The previous bound cookie (a request may have left before the browser stored the new
    /// one): accepted until its own expiry, never older ones.
    pub previous_cookie: Option<IssuedCookie>,
}
