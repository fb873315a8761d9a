//! Audit events: what happened, to whom, when and from where — never a secret, code or token.
//!
//! The service sends every event to `tracing` (target `verrou::audit`), to the store's
//! persistent trail ([`crate::store::Store::record_audit`], read back with
//! [`crate::Verrou::audit_trail`]) and to the [`AuditSink`] the application installs, if any.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::ids::{FactorId, SessionId, UserId};
use crate::session::proof::ProofError;
use crate::session::{BindingKind, BoundCookieProblem, RevocationReason, SecondFactorMethod};

/// One audit event.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Whose factor or account it concerns.
    pub user: UserId,
    /// The client address the portal trusts, if it gave one.
    pub client: Option<IpAddr>,
    /// What happened.
    pub kind: AuditKind,
}

impl AuditEvent {
    /// An event (for stores and sinks that rebuild events, and for tests).
    pub fn new(at: Timestamp, user: UserId, client: Option<IpAddr>, kind: AuditKind) -> Self {
        Self {
            at,
            user,
            client,
            kind,
        }
    }
}

/// What happened. Carries identifiers and outcomes, never secret material.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum AuditKind {
    /// A TOTP enrolment began; `replaces_active` when it will replace an active factor.
    TotpEnrollmentStarted {
        /// The pending factor.
        factor: FactorId,
        /// True for a re-enrolment.
        replaces_active: bool,
    },
    /// A secret from another TOTP system was imported for the user: pending until a first
    /// valid code, or, by an operator's explicit choice, active at once.
    TotpFactorImported {
        /// The imported factor.
        factor: FactorId,
        /// True when an operator activated it without a first code.
        activated_by_operator: bool,
    },
    /// A pending factor was confirmed with a first valid code and is now active.
    TotpEnrollmentConfirmed {
        /// The new active factor.
        factor: FactorId,
    },
    /// A wrong code was given to confirm a pending factor.
    TotpEnrollmentInvalid {
        /// The pending factor.
        factor: FactorId,
    },
    /// A TOTP code was accepted.
    TotpAccepted {
        /// The factor.
        factor: FactorId,
        /// The time step it matched.
        step: u64,
        /// Steps between the matched and the current step.
        drift: i8,
    },
    /// A wrong TOTP code.
    TotpInvalid {
        /// The factor.
        factor: FactorId,
    },
    /// A code whose time step had already been used: a replay, or a double submission.
    TotpReplayed {
        /// The factor.
        factor: FactorId,
    },
    /// An attempt refused by the backoff.
    Throttled {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// An attempt refused because the account or address is locked.
    Locked {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// A failure that started a lock.
    LockEngaged {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// An operator lifted the account's lock and cleared its failures.
    LockLifted,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesGenerated {
        /// Codes in the new set.
        count: usize,
    },
    /// A recovery code was used to pass the second factor.
    RecoveryCodeUsed {
        /// Unused codes left.
        remaining: usize,
    },
    /// Two or fewer unused recovery codes are left: the user should regenerate.
    RecoveryCodesLow {
        /// Unused codes left.
        remaining: usize,
    },
    /// A wrong recovery code.
    RecoveryCodeInvalid,
    /// A recovery code that was already used was presented again: the list may have leaked.
    RecoveryCodeReplayed,
    /// An operator removed the user's TOTP factor (active and pending), or the user disabled
    /// it.
    TotpFactorRemoved,
    /// A password-only session was created.
    SessionCreated {
        /// The session.
        session: SessionId,
    },
    /// A session passed the second factor (first time or step-up); its token was replaced.
    SessionElevated {
        /// The session.
        session: SessionId,
        /// How.
        method: SecondFactorMethod,
    },
    /// A session's soft signals changed: step-up asked for.
    SessionSignalsChanged {
        /// The session.
        session: SessionId,
    },
    /// A session was revoked (and deleted).
    SessionRevoked {
        /// The session.
        session: SessionId,
        /// Why.
        reason: RevocationReason,
    },
    /// A device key was registered for a session.
    BindingRegistered {
        /// The session.
        session: SessionId,
        /// DBSC or the WebCrypto fallback.
        kind: BindingKind,
    },
    /// A bound cookie was renewed with a valid device proof.
    BindingRefreshed {
        /// The session.
        session: SessionId,
    },
    /// A request of a bound session came without its current bound cookie and was told to
    /// refresh it with a device proof. Followed by `binding_refreshed` when the browser that
    /// holds the key was merely late; alone (or with `binding_proof_failed`), it is the trace
    /// of a copied session cookie replayed from another machine.
    BoundCookieRefused {
        /// The session.
        session: SessionId,
        /// What was wrong with the bound cookie.
        problem: BoundCookieProblem,
    },
    /// A device-binding proof was refused.
    BindingProofFailed {
        /// The session.
        session: SessionId,
        /// Why.
        reason: ProofError,
    },
}

impl AuditKind {
    /// A short stable name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TotpEnrollmentStarted { .. } => "totp_enrollment_started",
            Self::TotpFactorImported { .. } => "totp_factor_imported",
            Self::TotpEnrollmentConfirmed { .. } => "totp_enrollment_confirmed",
            Self::TotpEnrollmentInvalid { .. } => "totp_enrollment_invalid",
            Self::TotpAccepted { .. } => "totp_accepted",
            Self::TotpInvalid { .. } => "totp_invalid",
            Self::TotpReplayed { .. } => "totp_replayed",
            Self::Throttled { .. } => "throttled",
            Self::Locked { .. } => "locked",
            Self::LockEngaged { .. } => "lock_engaged",
            Self::LockLifted => "lock_lifted",
            Self::RecoveryCodesGenerated { .. } => "recovery_codes_generated",
            Self::RecoveryCodeUsed { .. } => "recovery_code_used",
            Self::RecoveryCodesLow { .. } => "recovery_codes_low",
            Self::RecoveryCodeInvalid => "recovery_code_invalid",
            Self::RecoveryCodeReplayed => "recovery_code_replayed",
            Self::TotpFactorRemoved => "totp_factor_removed",
            Self::SessionCreated { .. } => "session_created",
            Self::SessionElevated { .. } => "session_elevated",
            Self::SessionSignalsChanged { .. } => "session_signals_changed",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::BindingRegistered { .. } => "binding_registered",
            Self::BindingRefreshed { .. } => "binding_refreshed",
            Self::BoundCookieRefused { .. } => "bound_cookie_refused",
            Self::BindingProofFailed { .. } => "binding_proof_failed",
        }
    }
}

/// Where audit events go (a database table, a SIEM, a queue).
///
/// `record` is called on the request path: keep it fast and make it hand off slow work.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// An in-memory sink, for tests and small deployments.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
    }
}

/// Emits an event on `tracing` (target `verrou::audit`).
pub(crate) fn trace(at: Timestamp, user: &UserId, client: Option<IpAddr>, kind: &AuditKind) {
    let name = kind.name();
    let at = at.unix_seconds();
    let user = user.as_str();
    let client = client.map(tracing::field::display);
    match kind {
        AuditKind::TotpReplayed { .. }
        | AuditKind::RecoveryCodeReplayed
        | AuditKind::RecoveryCodesLow { .. }
        | AuditKind::Locked { .. }
        | AuditKind::LockEngaged { .. }
        | AuditKind::Throttled { .. }
        | AuditKind::SessionSignalsChanged { .. }
        | AuditKind::BoundCookieRefused { .. }
        | AuditKind::BindingProofFailed { .. } => {
            tracing::warn!(target: "verrou::audit", kind = name, at, user, client, detail = ?kind);
        }
        _ => tracing::info!(target: "verrou::audit", kind = name, at, user, client, detail = ?kind),
    }
}
