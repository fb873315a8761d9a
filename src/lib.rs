//! verrou: a second authentication factor for web portals that holds up against real
//! attackers.
//!
//! The crate gives a portal TOTP enrolment and verification (RFC 6238) where:
//! - every time step is accepted at most once, atomically in the store, so a code seen over
//!   a shoulder or lifted from a log cannot be replayed, not even by concurrent requests or on
//!   another instance sharing the store;
//! - guessing is throttled per account (and optionally per client address) with exponential
//!   backoff and escalating locks, counted *before* the code is checked so that a parallel
//!   burst cannot slip past the counter;
//! - untrusted input (codes, Base32 secrets, `otpauth://` URIs) is parsed strictly into typed
//!   errors and never panics;
//! - secrets are zeroized on drop and never appear in `Debug`, `Display`, errors or audit
//!   events.
//!
//! **Where to start.** A portal uses [`Verrou`], the service facade, built with
//! [`VerrouConfig`] over a store from [`store`] (`SqliteStore` by default,
//! [`store::MemoryStore`] in tests), and reads each flow's outcome enum from the crate root.
//! Session settings are in [`session`], throttle settings in [`lockout`]. Whoever implements
//! a store of their own finds the whole contract in [`store::backend`]. The primitives below
//! the service (`totp`, `recovery`, `lockout`) are pure and take the time as an argument.
//!
//! ```
//! use verrou::{ClientContext, TotpOutcome, UserId, Verrou, VerrouConfig};
//! use verrou::store::MemoryStore;
//!
//! # async fn run() -> Result<(), verrou::Error> {
//! let verrou = Verrou::new(MemoryStore::new(), VerrouConfig::new("Example Portal")?);
//! let user = UserId::new("alice")?;
//! let ctx = ClientContext::unknown();
//!
//! // Enrolment: show the URI (or its QR code) once, then confirm with a first code.
//! let offer = verrou.start_totp_enrollment(&user, "alice@example.org", &ctx).await?;
//! let _svg = offer.qr_svg()?;
//! // ... the user scans it and types the code their app shows ...
//! # let code = String::new();
//! let _confirmed = verrou.finish_totp_enrollment(&user, &code, &ctx).await?;
//!
//! // Later, at each login:
//! match verrou.verify_totp(&user, &code, &ctx).await? {
//!     TotpOutcome::Accepted(_) => { /* raise the session to second-factor assurance */ }
//!     _ => { /* refuse; the outcome says why (invalid, replayed, throttled, …) */ }
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod clock;
pub mod error;
pub mod ids;
pub mod keyring;
mod leaf_errors;
pub mod lockout;
pub mod recovery;
pub mod secret;
mod service;
pub mod session;
pub mod store;
#[cfg(feature = "insecure-test-utils")]
pub mod testing;
pub mod totp;

pub use crate::audit::{AuditEvent, AuditKind, AuditSink, AuditValue};
pub use crate::clock::{Clock, SystemClock, Timestamp};
pub use crate::error::{ApiMisuse, ConfigError, CryptoError, Error, InputError, StoreError};
pub use crate::ids::{FactorId, OrgId, SessionId, UserId};
pub use crate::keyring::{KeyId, KeyRing, KeyRingError, KEYS_ENV};
pub use crate::secret::TotpSecret;
pub use crate::service::{
    ActiveSession, BindingOutcome, BoundCredential, ClientContext, DisableOutcome, Elevated,
    ElevationOutcome, EnrollmentOffer, EnrollmentOutcome, ImportedFactor, LogoutOutcome,
    NewSession, RecoveryCodeSet, RecoveryCodesOutcome, RecoveryOutcome, ReenrollmentOutcome,
    RefreshOutcome, SecondFactorMethod, SecondFactorPassed, SecondFactorProof, SessionCookies,
    SessionStatus, ThrottleStatus, TotpAccepted, TotpOutcome, Verrou, VerrouConfig,
};
pub use crate::totp::{Algorithm, TotpParams};
/// The secret wrappers verrou hands out ([`SecretString`], [`SecretSlice`]) and the trait
/// that reads them ([`ExposeSecret`]), so a portal needs no `secrecy` dependency of its own.
pub use secrecy::{self, ExposeSecret, SecretSlice, SecretString};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
