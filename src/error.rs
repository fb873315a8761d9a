//! Errors: what went wrong with the system, as opposed to outcomes of an attempt.
//!
//! A wrong, replayed or malformed code is **not** an error: it is an outcome
//! ([`crate::TotpOutcome`]), so `?` never turns a typo into a server error, and an outage is
//! never reported as "wrong code". Errors carry no secret: no code, secret, token or URI
//! ever appears in a message.

pub use crate::leaf_errors::{ConfigError, CryptoError, InputError};
use std::fmt;

/// Everything that can fail in verrou.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not complete an operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is impossible or weakens the factor.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The clock returned a time verrou cannot work with.
    #[error(transparent)]
    Clock(#[from] crate::clock::ClockError),
    /// A cryptographic primitive or the random number generator failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The API was called in a way it does not allow.
    #[error(transparent)]
    Misuse(#[from] ApiMisuse),
    /// Caller-supplied input (an identifier, account name, secret or URI) was rejected.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// The API was used in a way that would weaken the factor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// `start_totp_enrollment` was called for a user who already has an active factor.
    /// Replacing it requires `start_totp_reenrollment` with a fresh second-factor proof.
    #[error("the user already has an active TOTP factor; re-enrolment needs a fresh second-factor proof (start_totp_reenrollment)")]
    FactorAlreadyActive,
    /// A second-factor proof was presented for re-enrolment but the user has no active factor.
    #[error("re-enrolment was requested but the user has no active TOTP factor")]
    NoActiveFactor,
    /// A second-factor proof was presented to elevate another user's session.
    #[error("the second-factor proof belongs to another user than the session")]
    ProofForAnotherUser,
    /// A proof standing for a session's earlier second factor was presented to raise a
    /// session: only a proof from a code just accepted does that.
    #[error("a session's step-up proof cannot raise a session: verify a code")]
    SessionProofCannotElevate,
    /// `finish_totp_enrollment` was called while the pending factor replaces an active one:
    /// use `finish_totp_reenrollment`, which says which session to keep.
    #[error("the pending factor is a re-enrolment: confirm it with finish_totp_reenrollment")]
    ReenrollmentPending,
    /// `finish_totp_reenrollment` was called while the pending factor is a first enrolment.
    #[error("the pending factor is a first enrolment: confirm it with finish_totp_enrollment")]
    NoReenrollmentPending,
}

/// What kind of store failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or timed out.
    Unavailable,
    /// Stored data is inconsistent or cannot be decoded.
    Corrupt,
    /// The schema is newer than this version of verrou, or otherwise incompatible.
    Incompatible,
    /// An atomic operation kept conflicting with concurrent writers.
    Contention,
    /// The key ring does not match the store: none of its keys opens what the store holds
    /// (the wrong `VERROU_KEYS`, or a key removed before a rotation finished).
    KeyMismatch,
    /// Anything else the backend reported.
    Backend,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt data",
            Self::Incompatible => "incompatible schema",
            Self::Contention => "too much contention",
            Self::KeyMismatch => "key ring mismatch",
            Self::Backend => "backend error",
        })
    }
}

/// A store failure: a kind, a static description, and the backend's error as source.
///
/// No driver type appears in the signature, so backends can change without breaking callers.
#[derive(Debug, thiserror::Error)]
#[error("store {kind}: {context}")]
pub struct StoreError {
    kind: StoreErrorKind,
    context: &'static str,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// A store error without an underlying cause.
    pub fn new(kind: StoreErrorKind, context: &'static str) -> Self {
        Self {
            kind,
            context,
            source: None,
        }
    }

    /// A store error caused by a backend error.
    pub fn with_source(
        kind: StoreErrorKind,
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            context,
            source: Some(Box::new(source)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}
